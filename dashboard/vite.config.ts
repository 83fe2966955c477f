import { defineConfig } from 'vite';

// The dashboard is plain Preact + TSX, bundled by Vite into dist/dashboard and served by Herald at /dashboard/.
export default defineConfig({
  root: import.meta.dirname,
  base: '/dashboard/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: '../dist/ui', emptyOutDir: true, sourcemap: false, target: 'es2022' },
  logLevel: 'warn',
});

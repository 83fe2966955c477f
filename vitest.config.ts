import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

// SWC compiles the tests so decorator metadata matches what the build (TypeScript, scripts/build.mjs) emits.
const plugins = [
  swc.vite({
    module: { type: 'es6' },
    jsc: {
      target: 'es2023',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
    },
  }),
];

const e2e = (name: string, db: string) => ({
  plugins,
  test: {
    name,
    include: ['test/e2e/**/*.e2e.ts'],
    env: { HERALD_TEST_DB: db },
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file starts its own Herald on its own database and queue prefix; two at a time suit 2 cores.
    maxWorkers: 2,
  },
});

export default defineConfig({
  test: {
    projects: [
      {
        plugins,
        test: { name: 'unit', include: ['src/**/*.spec.ts', 'test/unit/**/*.spec.ts', 'dashboard/src/**/*.spec.ts'] },
      },
      e2e('e2e-sqlite', 'sqlite'),
      e2e('e2e-postgres', 'postgres'),
      {
        plugins,
        test: {
          name: 'fault',
          include: ['test/fault/**/*.fault.ts'],
          env: { HERALD_TEST_DB: process.env.HERALD_TEST_DB ?? 'sqlite' },
          testTimeout: 240_000,
          hookTimeout: 60_000,
          // Fault tests start and kill whole processes; one file at a time keeps timings honest on 2 cores.
          maxWorkers: 1,
          fileParallelism: false,
        },
      },
    ],
  },
});

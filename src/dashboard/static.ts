import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NestExpressApplication } from '@nestjs/platform-express';

/** The built dashboard (Vite writes it to dist/ui), found from the compiled code or from src (tests). */
export function dashboardDir(): string | undefined {
  for (const candidate of ['../ui/', '../../dist/ui/']) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

/** Serves the dashboard at /dashboard from the same process; the API key stays in the browser session. */
export function serveDashboard(app: NestExpressApplication): void {
  const dir = dashboardDir();
  // Relative asset paths need the trailing slash; Express routes ignore it, so compare the raw URL.
  app.use('/dashboard', (req: { originalUrl: string }, res: { redirect(code: number, to: string): void }, next: () => void) =>
    req.originalUrl === '/dashboard' ? res.redirect(301, '/dashboard/') : next(),
  );
  if (dir) app.useStaticAssets(dir, { prefix: '/dashboard/', index: 'index.html', fallthrough: true });
}

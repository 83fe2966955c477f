import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import '@fastify/static'; // reply.sendFile
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { pathOf } from '../common/http-server.js';

/** The built dashboard (Vite writes it to dist/ui), found from the compiled code or from src (tests). */
export function dashboardDir(): string | undefined {
  for (const candidate of ['../ui/', '../../dist/ui/']) {
    const dir = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return undefined;
}

/** Serves the dashboard at /dashboard/ from the same process; the API key stays in the browser session. */
export function serveDashboard(app: NestFastifyApplication): void {
  const dir = dashboardDir();
  if (!dir) return;
  app.useStaticAssets({ root: dir, prefix: '/dashboard/', index: false });
  // The page: /dashboard redirects to /dashboard/, whose relative asset paths need the slash. Routes ignore a
  // trailing slash, so this one route answers both and tells them apart by the URL as sent.
  const http = app.getHttpAdapter().getInstance();
  http.get('/dashboard', (req, reply) =>
    pathOf(req.url) === '/dashboard' ? reply.redirect('/dashboard/', 301) : reply.sendFile('index.html'),
  );
  // Browsers ask for /favicon.ico on every page (the API's too); point them at the dashboard's SVG icon.
  http.get('/favicon.ico', (_req, reply) => reply.redirect('/dashboard/favicon.svg', 302));
}

import { readFileSync } from 'node:fs';

/** Read once from package.json so User-Agent and /health report the installed version. */
export const HERALD_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

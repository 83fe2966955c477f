import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

/** Appends one figure line for docs/RELIABILITY.md (see scripts/reliability-report.mjs). */
export function recordFigures(scenario: string, figures: Record<string, number | string>): void {
  const dir = path.resolve('reports');
  mkdirSync(dir, { recursive: true });
  appendFileSync(
    path.join(dir, 'reliability.jsonl'),
    JSON.stringify({ scenario, at: new Date().toISOString(), db: process.env.HERALD_TEST_DB ?? 'sqlite', ...figures }) +
      '\n',
  );
}

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { testDb } from '../support/herald.js';

const run = promisify(execFile);

// The benchmark itself is `npm run bench` (minutes); its smoke run proves the harness still measures every figure.
// It uses SQLite and PostgreSQL itself, so it runs once, in the SQLite project.
describe.skipIf(testDb() !== 'sqlite')('benchmark harness smoke run', () => {
  // About 2.5 minutes on a 2-core machine beside another test file: the bound leaves room for a slower one.
  it('prints one JSON line per measure, for Herald and both baselines', { timeout: 420_000 }, async () => {
    const { stdout } = await run(process.execPath, ['bench/run.mjs', '--smoke'], {
      timeout: 410_000,
      maxBuffer: 1 << 20,
    });
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const systems = lines.filter((l) => l.measure === 'deliveries_per_s').map((l) => l.system);
    expect(systems).toEqual(
      expect.arrayContaining([
        'raw keep-alive POST loop (ceiling)',
        'BullMQ + axios by hand',
        'Herald (sqlite)',
        'Herald (postgres)',
      ]),
    );
    for (const l of lines.filter((l) => l.measure === 'deliveries_per_s')) expect(l.value).toBeGreaterThan(0);
    // End to end: Herald and the BullMQ + axios service, every task's terminal webhook in, no progress lost.
    const e2e = lines.filter((l) => l.measure === 'e2e_tasks_per_s');
    expect(e2e.map((l) => l.system)).toEqual(['BullMQ + axios by hand', 'Herald (sqlite)']);
    for (const l of e2e) expect(l).toMatchObject({ incomplete: 0 });
    for (const l of e2e) expect(l.value).toBeGreaterThan(0);
    for (const l of lines.filter((l) => l.measure === 'e2e_run')) expect(l.progress_missing).toBe(0);
    const latency = lines.find((l) => l.measure === 'event_to_receipt_ms');
    expect(latency?.p99).toBeGreaterThan(0);
    const creates = lines.find((l) => l.measure === 'creates_per_s');
    expect(creates?.value).toBeGreaterThan(0);
    expect(creates?.errors).toBe(0);
    const backlog = lines.find((l) => l.measure === 'backlog');
    expect(backlog?.peak_rss_mb).toBeGreaterThan(0);
    expect(lines.filter((l) => l.measure === 'deliveries_per_s_by_workers').map((l) => l.workers)).toEqual([1, 2]);
    const cycles = lines.filter((l) => l.measure === 'worker_cycles_per_s');
    expect(cycles.map((l) => l.system)).toEqual(['Herald workers (sqlite)', 'bare BullMQ Worker']);
    for (const l of cycles) expect(l.value).toBeGreaterThan(0);
    expect(lines.find((l) => l.measure === 'create_to_lease_ms')?.p99).toBeGreaterThan(0);
    // Both fan-out shapes, every subscriber with every event of its tenant, in order.
    const streams = lines.filter((l) => l.measure === 'stream_fanout');
    expect(streams.map((l) => l.shape)).toEqual(['all', 'tenants']);
    for (const l of streams)
      expect(l).toMatchObject({ subscribers_with_every_event: l.subscribers, out_of_order: 0, closed: 0 });
  });
});

import { describe, expect, it } from 'vitest';
import { InFlight } from './in-flight.js';

describe('InFlight', () => {
  it('settles only when every tracked piece of work is done, including work tracked while waiting', async () => {
    const inFlight = new InFlight();
    const done: string[] = [];
    inFlight.track(
      new Promise<void>((r) =>
        setTimeout(() => {
          done.push('first');
          inFlight.track(new Promise<void>((r2) => setTimeout(() => (done.push('second'), r2()), 5)));
          r();
        }, 5),
      ),
    );
    await inFlight.settled();
    expect(done).toEqual(['first', 'second']);
  });

  it('settles at once when nothing runs', async () => {
    await expect(new InFlight().settled()).resolves.toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import {
  poster,
  POSTER_COLOURINGS,
  posterName,
  posterSize,
  progressSteps,
  SimulatorProvider,
} from './simulator.provider.js';
import { ProviderError, type GenerationInput } from './provider.js';

const input = (over: Partial<GenerationInput> = {}): GenerationInput => ({
  taskId: '01a2067a-85e7-772a-b5bb-a39c8118ce75',
  attempt: 1,
  kind: 'image',
  model: 'm',
  prompt: 'p',
  options: { size: '64x32' },
  params: {},
  simulate: { duration_ms: 10 },
  resumeFromPercent: 0,
  ...over,
});

const ctx = (stopAt = 101) => {
  const seen: number[] = [];
  return {
    seen,
    ctx: { signal: new AbortController().signal, progress: async (p: number) => (seen.push(p), p < stopAt) },
  };
};

describe('simulator provider', () => {
  it('reports ten steps and resumes after the last one reached', () => {
    expect(progressSteps(0)).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(progressSteps(60)).toEqual([70, 80, 90, 100]);
  });

  it('takes SIMULATOR_STEPS steps: eleven make ten progress events before the terminal one', async () => {
    expect(progressSteps(0, 11)).toEqual([9, 18, 27, 36, 45, 55, 64, 73, 82, 91, 100]);
    const { seen, ctx: c } = ctx();
    expect(await new SimulatorProvider(0, 11).generate(input({ simulate: { duration_ms: 11 } }), c)).toHaveLength(1);
    expect(seen).toEqual([9, 18, 27, 36, 45, 55, 64, 73, 82, 91]);
  });

  it('reports no progress for an instant simulation', async () => {
    const { seen, ctx: c } = ctx();
    expect(await new SimulatorProvider(0).generate(input({ simulate: { duration_ms: 0 } }), c)).toHaveLength(1);
    expect(seen).toEqual([]);
  });

  it('produces a PNG per requested image', async () => {
    const { seen, ctx: c } = ctx();
    const out = await new SimulatorProvider(0).generate(input({ options: { size: '64x32', n: 3 } }), c);
    expect(out).toHaveLength(3);
    expect(seen).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90]);
    if (out === 'stopped') throw new Error('stopped');
    expect(out[0].mimeType).toBe('image/png');
    expect(out[0].resolution).toBe('64x32');
  });

  it('stops within one step when the task must stop', async () => {
    const { seen, ctx: c } = ctx(30);
    expect(await new SimulatorProvider(0).generate(input(), c)).toBe('stopped');
    expect(seen).toEqual([10, 20, 30]);
  });

  it('fails at the requested percent with the requested error', async () => {
    const { seen, ctx: c } = ctx();
    const run = new SimulatorProvider(0).generate(
      input({ simulate: { duration_ms: 0, fail_at_percent: 45, error: 'Insufficient credits' } }),
      c,
    );
    await expect(run).rejects.toThrow(new ProviderError('Insufficient credits', 'simulated_failure'));
    expect(seen).toEqual([10, 20, 30, 40]);
  });

  it('draws each of the colourings once per size, and different seeds get different colourings', () => {
    const first = poster(64, 32, 7);
    expect(first.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(poster(64, 32, 7)).toBe(first);
    expect(poster(64, 32, 7 + POSTER_COLOURINGS)).toBe(first);
    const all = new Set(
      Array.from({ length: POSTER_COLOURINGS }, (_, seed) => poster(64, 32, seed).toString('base64')),
    );
    expect(all.size).toBe(POSTER_COLOURINGS);
    expect(poster(32, 64, 7)).not.toEqual(first);
  });

  it('names its bytes for the store to keep once: the same name exactly where the bytes are the same', async () => {
    const { ctx: c } = ctx();
    const run = (options: object, kind: 'image' | 'video' = 'image') =>
      new SimulatorProvider(0).generate(input({ kind, options }), c).then((out) => (out === 'stopped' ? [] : out));
    const images = [...(await run({ size: '64x32', n: 2, seed: 3 })), ...(await run({ size: '64x32', seed: 3 }))];
    expect(images.map((a) => a.sharedAs)).toEqual(['poster-64x32-3.png', 'poster-64x32-4.png', 'poster-64x32-3.png']);
    expect(images[0].bytes.equals(images[2].bytes)).toBe(true);
    expect(images[0].bytes.equals(images[1].bytes)).toBe(false);
    expect(posterName(64, 32, 3 + POSTER_COLOURINGS)).toBe('poster-64x32-3.png');
    expect((await run({}, 'video'))[0].sharedAs).toBe('placeholder.mp4');
  });

  it('scales posters down to a small size, keeping the aspect ratio', () => {
    expect(posterSize('1280x720')).toEqual([256, 144]);
    expect(posterSize('100x50')).toEqual([100, 50]);
  });

  it('uses the configured duration unless the request sets one', () => {
    const p = new SimulatorProvider(8_000);
    expect(p.estimateDurationMs({ simulate: null })).toBe(8_000);
    expect(p.estimateDurationMs({ simulate: { duration_ms: 50 } })).toBe(50);
  });
});

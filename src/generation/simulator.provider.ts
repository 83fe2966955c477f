import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  GeneratedArtifact,
  GenerationContext,
  GenerationInput,
  GenerationProvider,
  ProviderError,
} from './provider.js';
import { renderPoster } from './png.js';

export const SIMULATOR_STEPS = 10;
const MAX_POSTER_SIDE = 256;
// Drawing and compressing a poster costs ~0.2 ms of the event loop per image — CPU a real provider, being remote,
// does not cost Herald. So posters come in POSTER_COLOURINGS colourings, the seed picks one, and each is drawn once
// per size and kept (the most recently used POSTERS_KEPT). Callers only read the bytes (a file, or base64).
export const POSTER_COLOURINGS = 64;
const POSTERS_KEPT = 256;
const posters = new Map<string, Buffer>();

/** The poster for a size and seed: one of POSTER_COLOURINGS pictures per size, drawn the first time it is asked for. */
export function poster(width: number, height: number, seed: number): Buffer {
  const key = posterName(width, height, seed);
  const kept = posters.get(key);
  posters.delete(key);
  // Spread the colouring over the 24 bits renderPoster takes its base colour from.
  const png = kept ?? renderPoster(width, height, Math.imul((seed % POSTER_COLOURINGS) + 1, 2654435761) >>> 8);
  posters.set(key, png);
  if (posters.size > POSTERS_KEPT) posters.delete(posters.keys().next().value!);
  return png;
}

/** What names a poster's bytes (GeneratedArtifact.sharedAs): its size and colouring. */
export function posterName(width: number, height: number, seed: number): string {
  return `poster-${width}x${height}-${seed % POSTER_COLOURINGS}.png`;
}

/** Progress messages by stage, in the words Conduit uses in its progress webhooks. */
export function stageMessage(kind: 'video' | 'image', percent: number): string {
  if (percent >= 100) return kind === 'video' ? 'Video generation complete' : 'Image generation complete';
  if (percent < 20) return 'Preparing generation';
  if (percent < 50) return kind === 'video' ? 'Composing scenes' : 'Composing image';
  if (percent < 80) return kind === 'video' ? 'Rendering video content' : 'Rendering image';
  return kind === 'video' ? 'Encoding video' : 'Finalizing image';
}

/** The percent points a run reports, after what an earlier run of the same attempt already reached. */
export function progressSteps(resumeFrom: number, steps = SIMULATOR_STEPS): number[] {
  const points: number[] = [];
  for (let i = 1; i <= steps; i++) {
    const p = Math.round((i * 100) / steps);
    if (p > resumeFrom) points.push(p);
  }
  return points;
}

export function posterSize(size: string | undefined): [number, number] {
  const [w, h] = (size ?? '1024x1024').split('x').map(Number);
  const scale = Math.min(1, MAX_POSTER_SIDE / Math.max(w, h));
  return [Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(h * scale))];
}

function seedOf(input: GenerationInput): number {
  if (input.options.seed !== undefined) return input.options.seed;
  let h = 2166136261;
  for (const ch of input.taskId + input.prompt) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return h >>> 0;
}

let placeholderVideo: Buffer | undefined;
function loadPlaceholderVideo(): Buffer {
  placeholderVideo ??= readFileSync(new URL('../../assets/placeholder.mp4', import.meta.url));
  return placeholderVideo;
}

/**
 * The built-in provider: advances in ten steps (SIMULATOR_STEPS) over the configured duration, fails on request at a given
 * percent, stops within one step when told, and produces a small real artifact (a PNG, or a placeholder MP4).
 */
export class SimulatorProvider implements GenerationProvider {
  readonly name = 'simulator';

  constructor(
    private readonly defaultDurationMs: number,
    private readonly steps = SIMULATOR_STEPS,
  ) {}

  estimateDurationMs(input: Pick<GenerationInput, 'simulate'>): number {
    return input.simulate?.duration_ms ?? this.defaultDurationMs;
  }

  async generate(input: GenerationInput, ctx: GenerationContext): Promise<GeneratedArtifact[] | 'stopped'> {
    const stepMs = this.estimateDurationMs(input) / this.steps;
    const failAt = input.simulate?.fail_at_percent;
    const failure = () =>
      new ProviderError(input.simulate?.error ?? `Simulated failure at ${failAt}%`, 'simulated_failure');
    if (failAt === 0) throw failure();
    // An instant simulation (duration 0) has no progress worth reporting, unless it must fail part-way.
    const steps = stepMs > 0 || failAt !== undefined ? progressSteps(input.resumeFromPercent, this.steps) : [100];
    for (const percent of steps) {
      if (stepMs > 0) await sleep(stepMs, undefined, { signal: ctx.signal });
      ctx.signal.throwIfAborted();
      if (failAt !== undefined && percent >= failAt) throw failure();
      if (percent < 100 && !(await ctx.progress(percent, stageMessage(input.kind, percent)))) return 'stopped';
    }
    return this.render(input);
  }

  private render(input: GenerationInput): GeneratedArtifact[] {
    const seed = seedOf(input);
    if (input.kind === 'video') {
      return [
        {
          bytes: loadPlaceholderVideo(),
          sharedAs: 'placeholder.mp4',
          mimeType: 'video/mp4',
          extension: 'mp4',
          // The metadata describes the placeholder actually served, not the size asked for.
          resolution: '160x90',
          durationSeconds: 2,
          fps: 12,
          seed,
        },
      ];
    }
    const [w, h] = posterSize(input.options.size);
    return Array.from({ length: input.options.n ?? 1 }, (_, i) => ({
      bytes: poster(w, h, seed + i),
      sharedAs: posterName(w, h, seed + i),
      mimeType: 'image/png',
      extension: 'png',
      resolution: `${w}x${h}`,
      seed: seed + i,
      revisedPrompt: input.prompt,
    }));
  }
}

import type { GenerationOptions, TaskKind } from '../tasks/task.entity.js';

export interface GenerationInput {
  taskId: string;
  attempt: number;
  kind: TaskKind;
  model: string;
  prompt: string;
  options: GenerationOptions;
  params: Record<string, unknown>;
  simulate: { duration_ms?: number; fail_at_percent?: number; error?: string } | null;
  /** Progress already reached by an earlier run of this attempt (a worker crashed or handed the job back). */
  resumeFromPercent: number;
}

export interface GeneratedArtifact {
  bytes: Buffer;
  mimeType: string;
  extension: string;
  resolution: string;
  durationSeconds?: number;
  fps?: number;
  seed: number;
  revisedPrompt?: string;
  /**
   * A name for exactly these bytes, the same wherever they recur (the simulator's posters and placeholder video):
   * the store keeps one copy per name and links every artifact of it there, instead of a new file each time.
   * Letters, digits, '.', '_' and '-'.
   */
  sharedAs?: string;
}

export interface GenerationContext {
  /** Aborted when the worker shuts down; the provider stops and the job is handed back. */
  signal: AbortSignal;
  /** Reports progress; resolves false when the task must stop (cancelled, timed out, or superseded). */
  progress(percent: number, message: string): Promise<boolean>;
}

/** A generation backend. Providers know nothing of queues, tasks tables or webhooks. */
export interface GenerationProvider {
  readonly name: string;
  estimateDurationMs(input: Pick<GenerationInput, 'kind' | 'simulate' | 'options'>): number;
  generate(input: GenerationInput, ctx: GenerationContext): Promise<GeneratedArtifact[] | 'stopped'>;
}

/** A generation failed for a reason the client should see (`error` in the task and the webhook). */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly code = 'generation_failed',
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

export const GENERATION_PROVIDER = Symbol('GENERATION_PROVIDER');

import {
  context,
  diag,
  DiagLogLevel,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Span,
  type SpanContext,
  type Tracer,
} from '@opentelemetry/api';
import type { HeraldConfig } from '../config/config.js';

/**
 * Herald's spans, made explicitly (no auto-instrumentation): the create request, each generation step, each webhook
 * attempt, all in the task's one trace. Without an OTLP endpoint the SDK is never imported and every helper here
 * returns at its first line, so the untraced paths pay one `undefined` check.
 */

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** A W3C traceparent header's span context, or undefined when it is not a valid one (then a new trace starts). */
export function parseTraceparent(header: string | undefined): SpanContext | undefined {
  const m = header ? TRACEPARENT.exec(header.trim()) : null;
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  // Version ff is invalid; version 00 has nothing after the flags; all-zero ids are invalid.
  if (version === 'ff' || (version === '00' && rest) || /^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED, isRemote: true };
}

export function formatTraceparent(ctx: SpanContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${(ctx.traceFlags & TraceFlags.SAMPLED) !== 0 ? '01' : '00'}`;
}

interface Running {
  tracer: Tracer;
  shutdown(): Promise<void>;
}

let running: Running | undefined;

export function tracingOn(): boolean {
  return running !== undefined;
}

/**
 * Loads the SDK and starts exporting when the config asks for it: spans batched and sent as OTLP/HTTP JSON. Also
 * registers the async-context manager, so log lines written inside a span know it (logging.ts).
 */
export async function startTracing(
  config: Pick<HeraldConfig, 'tracing' | 'version' | 'role'>,
  warn: (message: string) => void = () => undefined,
): Promise<void> {
  if (!config.tracing || running) return;
  // The SDK reports failed exports (collector down, refused) through its diag logger: into Herald's log, as warnings.
  const text = (a: unknown): string => {
    // The exporter hands over its error serialized as JSON, stack included: its message is what the log needs.
    if (typeof a === 'string' && a.startsWith('{"')) {
      try {
        return text(JSON.parse(a));
      } catch {
        return a;
      }
    }
    return typeof a === 'string'
      ? a
      : typeof (a as Error)?.message === 'string'
        ? (a as Error).message
        : JSON.stringify(a);
  };
  const report = (...args: unknown[]) => warn(`tracing: ${args.map(text).join(' ')}`);
  diag.setLogger(
    { error: report, warn: report, info: () => undefined, debug: () => undefined, verbose: () => undefined },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }, semconv] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/semantic-conventions'),
    ]);
  const exporter = new OTLPTraceExporter({ url: config.tracing.tracesUrl, headers: config.tracing.headers });
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      [semconv.ATTR_SERVICE_NAME]: config.tracing.serviceName,
      [semconv.ATTR_SERVICE_VERSION]: config.version,
      'herald.role': config.role,
    }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  provider.register();
  running = {
    tracer: provider.getTracer('herald', config.version),
    shutdown: async () => {
      try {
        await provider.shutdown();
      } finally {
        // Unregistered even when the last export failed (collector down): a later start registers afresh.
        trace.disable();
        context.disable();
        propagation.disable();
        diag.disable();
      }
    },
  };
}

/** Flushes what is batched to the collector and unloads the global provider (a later start may start again). */
export async function stopTracing(): Promise<void> {
  const was = running;
  running = undefined;
  await was?.shutdown();
}

/** `trace_id` and `span_id` of the span active where a log line is written, for pino's mixin. */
export function traceFields(): Record<string, string> {
  const span = running && trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/**
 * Runs `work` inside a server span for a request (the child of the caller's traceparent, if it sent a valid one),
 * handing it the span's traceparent to store with what the request creates. Untraced: `work(undefined)`.
 */
export async function inRequestSpan<T>(
  name: string,
  callerTraceparent: string | undefined,
  attributes: Attributes,
  work: (traceparent: string | undefined) => Promise<T>,
): Promise<T> {
  if (!running) return work(undefined);
  const remote = parseTraceparent(callerTraceparent);
  const parent = remote ? trace.setSpanContext(ROOT_CONTEXT, remote) : ROOT_CONTEXT;
  const span = running.tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => work(formatTraceparent(span.spanContext())));
  } catch (err) {
    // A refused request (validation, idempotency conflict: a 4xx) is the caller's error, not the server's.
    const status =
      (err as { status?: unknown; getStatus?: () => number }).status ??
      (err as { getStatus?: () => number }).getStatus?.();
    if (typeof status === 'number') span.setAttribute('http.response.status_code', status);
    if (typeof status !== 'number' || status >= 500) failed(span, err);
    throw err;
  } finally {
    span.end();
  }
}

/** Records a step that has already happened (a task's status change, from `startedAt` to now) in the task's trace. */
export function recordStep(
  taskTraceparent: string | null | undefined,
  name: string,
  startedAt: number,
  attributes: Attributes,
): void {
  const parent = running && parseTraceparent(taskTraceparent ?? undefined);
  if (!parent) return;
  running!.tracer
    .startSpan(
      name,
      { kind: SpanKind.INTERNAL, startTime: startedAt, attributes },
      trace.setSpanContext(ROOT_CONTEXT, parent),
    )
    .end();
}

/** A client span for one outbound attempt; its `traceparent` goes in the request, so the receiver sees its id. */
export interface ClientSpan {
  traceparent: string;
  end(outcome: { statusCode?: number; error?: string }): void;
}

export function startClientSpan(
  taskTraceparent: string | null | undefined,
  name: string,
  attributes: Attributes,
): ClientSpan | undefined {
  if (!running) return undefined;
  const parent = parseTraceparent(taskTraceparent ?? undefined);
  // A delivery of no traced task (a test event, a task created while tracing was off) starts its own trace.
  const span = running.tracer.startSpan(
    name,
    { kind: SpanKind.CLIENT, attributes },
    parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT,
  );
  return {
    traceparent: formatTraceparent(span.spanContext()),
    end: ({ statusCode, error }) => {
      if (statusCode) span.setAttribute('http.response.status_code', statusCode);
      if (error || !statusCode || statusCode >= 400)
        span.setStatus({ code: SpanStatusCode.ERROR, ...(error ? { message: error } : {}) });
      span.end();
    },
  };
}

function failed(span: Span, err: unknown): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
}

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createRootLogger } from '../../src/observability/logging.js';
import { inRequestSpan, tracingOn } from '../../src/observability/tracing.js';
import { eventually, startTestHerald, type TestHerald } from '../support/herald.js';
import { startReceiver, type ReceivedWebhook } from '../support/receiver.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: number | string } }>;
}

/** A local OTLP/HTTP collector: takes POST /v1/traces (JSON, as Herald's exporter sends it) and keeps every span. */
async function startCollector() {
  const spans: OtlpSpan[] = [];
  const services = new Set<string>();
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      paths.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) {
        const name = rs.resource?.attributes?.find((a: { key: string }) => a.key === 'service.name')?.value
          ?.stringValue;
        if (name) services.add(name);
        for (const ss of rs.scopeSpans ?? []) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    services,
    paths,
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined);
};
const isTerminal = (w: ReceivedWebhook) => w.body?.webhook_type?.endsWith('_completed');
const OTEL_GLOBAL = Symbol.for('opentelemetry.js.api.1');

async function runTask(
  h: TestHerald,
  webhookUrl: string,
  headers: Record<string, string> = {},
  extra: Record<string, unknown> = {},
) {
  const res = await h.api(
    'POST',
    '/v1/videos/generations/async',
    {
      model: 'minimax-video',
      prompt: 'a lighthouse at dusk',
      webhook_url: webhookUrl,
      simulate: { duration_ms: 150 },
      ...extra,
    },
    headers,
  );
  expect(res.status).toBe(202);
  return res.body.task_id as string;
}

describe('tracing', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  });

  it('without OTEL_EXPORTER_OTLP_ENDPOINT sends no traceparent and loads no SDK', async () => {
    const receiver = await startReceiver();
    cleanup.push(receiver.close);
    const h = await startTestHerald();
    try {
      const taskId = await runTask(h, receiver.url());
      const hooks = await eventually(async () =>
        receiver.forTask(taskId).some(isTerminal) ? receiver.forTask(taskId) : undefined,
      );
      expect(hooks.length).toBeGreaterThanOrEqual(2);
      for (const hook of hooks) expect(hook.headers.traceparent).toBeUndefined();
      expect(tracingOn()).toBe(false);
      // No tracer provider was ever registered with the OpenTelemetry API.
      expect((globalThis as Record<symbol, { trace?: unknown } | undefined>)[OTEL_GLOBAL]?.trace).toBeUndefined();
    } finally {
      await h.stop();
    }
  });

  it('exports one trace per task: create request, generation steps and webhook attempts, ids as the receiver saw them', async () => {
    const collector = await startCollector();
    cleanup.push(collector.close);
    const receiver = await startReceiver();
    cleanup.push(receiver.close);
    const h = await startTestHerald({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_SERVICE_NAME: 'herald-e2e' });
    let stopped = false;
    cleanup.push(async () => void (stopped || (await h.stop())));

    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    // A traceparent among the caller's webhook headers gives way to the attempt's own.
    const plain = await runTask(
      h,
      receiver.url(),
      {},
      { webhook_headers: { Traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` } },
    );
    const joined = await runTask(h, receiver.url(), { traceparent: `00-${callerTrace}-${callerSpan}-01` });
    for (const id of [plain, joined])
      await eventually(async () => (receiver.forTask(id).some(isTerminal) ? true : undefined));

    // A log line written inside a span carries its trace id.
    const lines: string[] = [];
    const log = createRootLogger(
      { ...h.config, logLevel: 'info' },
      new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }),
    );
    const seen = await inRequestSpan(
      'log check',
      undefined,
      {},
      async (traceparent) => (log.info('inside'), traceparent),
    );
    const logged = JSON.parse(lines[0]);
    expect(logged.trace_id).toBe(seen!.split('-')[1]);
    expect(logged.span_id).toBe(seen!.split('-')[2]);

    // Shutdown flushes the exporter: every span is at the collector once close returns.
    await h.stop();
    stopped = true;
    expect(tracingOn()).toBe(false);
    expect(collector.paths.every((p) => p.startsWith('POST /v1/traces application/json'))).toBe(true);
    expect([...collector.services]).toEqual(['herald-e2e']);

    const traceIds = new Set<string>();
    for (const taskId of [plain, joined]) {
      const steps = collector.spans.filter(
        (s) => attr(s, 'herald.task.id') === taskId && s.name.startsWith('generation '),
      );
      const attempts = collector.spans.filter(
        (s) => attr(s, 'herald.task.id') === taskId && s.name.startsWith('webhook '),
      );
      const create = collector.spans.find((s) => s.kind === 2 && s.spanId === steps[0]?.parentSpanId);
      expect(create, `create span of ${taskId}`).toBeDefined();
      expect(create!.name).toBe('POST /v1/videos/generations/async');
      const traceId = create!.traceId;
      traceIds.add(traceId);
      if (taskId === joined) {
        expect(traceId).toBe(callerTrace);
        expect(create!.parentSpanId).toBe(callerSpan);
      } else {
        expect(create!.parentSpanId ?? '').toBe('');
      }
      // started, progress steps, completed: each a child of the create span.
      expect(steps.map((s) => s.name)).toEqual(
        expect.arrayContaining(['generation processing', 'generation completed']),
      );
      for (const s of [...steps, ...attempts]) {
        expect(s.traceId).toBe(traceId);
        expect(s.parentSpanId).toBe(create!.spanId);
      }
      // Every webhook the receiver got names its attempt's span in traceparent.
      const hooks = receiver.forTask(taskId);
      expect(hooks.length).toBeGreaterThanOrEqual(2);
      for (const hook of hooks) {
        const [version, hookTrace, hookSpan, flags] = String(hook.headers.traceparent).split('-');
        expect([version, hookTrace, flags]).toEqual(['00', traceId, '01']);
        const attempt = attempts.find((s) => s.spanId === hookSpan);
        expect(attempt, `attempt span ${hookSpan}`).toBeDefined();
        expect(attempt!.kind).toBe(3);
        expect(attr(attempt!, 'http.response.status_code')).toBe(200);
      }
      expect(attempts.length).toBe(hooks.length);
    }
    expect(traceIds.size).toBe(2);
  });

  it('gives a batch one span in its carrier task’s trace, named in the batch request’s traceparent', async () => {
    const collector = await startCollector();
    cleanup.push(collector.close);
    const receiver = await startReceiver();
    cleanup.push(receiver.close);
    const h = await startTestHerald({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url });
    let stopped = false;
    cleanup.push(async () => void (stopped || (await h.stop())));
    const created = await h.api('POST', '/v1/webhooks', {
      url: receiver.url('/batched'),
      events: ['task.completed'],
      batch: { max_events: 10, max_wait_ms: 1_000 },
    });
    expect(created.status).toBe(201);
    const tasks = await Promise.all(Array.from({ length: 4 }, () => runTask(h, receiver.url('/per-request'))));
    const batches = () => receiver.received.filter((r) => r.path === '/batched');
    const events = () => batches().flatMap((r) => r.body as Array<{ data: { task_id: string } }>);
    await eventually(async () => (events().length >= tasks.length ? true : undefined));
    await h.stop();
    stopped = true;

    expect(batches().some((r) => (r.body as unknown[]).length > 1)).toBe(true);
    for (const hook of batches()) {
      const [, hookTrace, hookSpan] = String(hook.headers.traceparent).split('-');
      const span = collector.spans.find((s) => s.spanId === hookSpan);
      expect(span, `batch span ${hookSpan}`).toBeDefined();
      expect(span!.name).toBe('webhook batch');
      expect(span!.kind).toBe(3);
      expect(span!.traceId).toBe(hookTrace);
      expect(attr(span!, 'herald.batch.id')).toBe(hook.headers['webhook-id']);
      expect(attr(span!, 'herald.batch.events')).toBe((hook.body as unknown[]).length);
      // The carrier's task: one of the batch's, and the span is in that task's trace.
      const carrierTask = attr(span!, 'herald.task.id') as string;
      expect((hook.body as Array<{ data: { task_id: string } }>).map((e) => e.data.task_id)).toContain(carrierTask);
      const step = collector.spans.find(
        (s) => attr(s, 'herald.task.id') === carrierTask && s.name.startsWith('generation '),
      );
      expect(step?.traceId).toBe(hookTrace);
    }
    // One span per batch request to the endpoint, not one per event it carried.
    const toEndpoint = collector.spans.filter((s) => attr(s, 'herald.delivery.target') === created.body.id);
    expect(toEndpoint.length).toBe(batches().length);
  });
});

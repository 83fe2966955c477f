import { describe, expect, it } from 'vitest';
import { conduitPayload, EventFacts, MAX_PAYLOAD_BYTES, serializePayload } from './payloads.js';

const facts = (over: Partial<EventFacts> = {}, task: Partial<EventFacts['task']> = {}): EventFacts => ({
  eventId: '01a2067a-85e7-772a-b5bb-a39c8118ce75',
  type: 'task.completed',
  sequence: 12,
  createdAt: new Date('2024-01-20T15:30:45.123Z'),
  ...over,
  task: {
    id: '550e8400-e29b-41d4-a716-446655440000',
    kind: 'video',
    status: 'completed',
    progress: 100,
    message: 'Video generation complete',
    model: 'minimax-video',
    prompt: 'A serene mountain landscape with clouds',
    error: null,
    result: { data: [{ url: 'https://cdn.example.com/videos/generated-video.mp4' }] },
    metadata: null,
    startedAt: new Date('2024-01-20T15:30:00.000Z'),
    completedAt: new Date('2024-01-20T15:30:45.500Z'),
    estimatedDurationMs: 60_000,
    ...task,
  },
});

describe('Conduit payloads (seeds/001)', () => {
  it('reports a completed video exactly as Conduit does, plus event_id, event_type and sequence', () => {
    expect(conduitPayload(facts())).toEqual({
      task_id: '550e8400-e29b-41d4-a716-446655440000',
      status: 'completed',
      webhook_type: 'video_generation_completed',
      timestamp: '2024-01-20T15:30:45.123Z',
      video_url: 'https://cdn.example.com/videos/generated-video.mp4',
      generation_duration_seconds: 45.5,
      model: 'minimax-video',
      prompt: 'A serene mountain landscape with clouds',
      event_id: '01a2067a-85e7-772a-b5bb-a39c8118ce75',
      event_type: 'video_generation_completed',
      sequence: 12,
    });
  });

  it('reports a failure with its error and no URL', () => {
    const p = conduitPayload(
      facts(
        { type: 'task.failed' },
        { status: 'failed', error: 'Insufficient credits for video generation', result: null },
      ),
    );
    expect(p).toMatchObject({
      status: 'failed',
      webhook_type: 'video_generation_completed',
      error: 'Insufficient credits for video generation',
      model: 'minimax-video',
    });
    expect(p).not.toHaveProperty('video_url');
  });

  it('reports a cancellation as Conduit does', () => {
    const p = conduitPayload(
      facts(
        { type: 'task.cancelled' },
        { status: 'cancelled', error: 'Video generation was cancelled by user request', result: null },
      ),
    );
    expect(p).toMatchObject({
      status: 'cancelled',
      webhook_type: 'video_generation_completed',
      error: 'Video generation was cancelled by user request',
    });
  });

  it('reports progress with percentage, message and seconds remaining', () => {
    const p = conduitPayload(
      facts(
        { type: 'task.progress' },
        { status: 'processing', progress: 50, message: 'Rendering video content', completedAt: null, result: null },
      ),
    );
    expect(p).toEqual({
      task_id: '550e8400-e29b-41d4-a716-446655440000',
      status: 'processing',
      webhook_type: 'video_generation_progress',
      timestamp: '2024-01-20T15:30:45.123Z',
      progress_percentage: 50,
      message: 'Rendering video content',
      estimated_seconds_remaining: 30,
      event_type: 'video_generation_progress',
      event_id: '01a2067a-85e7-772a-b5bb-a39c8118ce75',
      sequence: 12,
    });
  });

  it('uses image_generation_* and image_url for images, and echoes webhook_metadata as metadata', () => {
    const p = conduitPayload(facts({}, { kind: 'image', metadata: { order: 42 } }));
    expect(p).toMatchObject({
      webhook_type: 'image_generation_completed',
      image_url: 'https://cdn.example.com/videos/generated-video.mp4',
      metadata: { order: 42 },
    });
    expect(p?.image_urls).toEqual(['https://cdn.example.com/videos/generated-video.mp4']);
  });

  it('sends nothing for queued and started events', () => {
    expect(conduitPayload(facts({ type: 'task.queued' }))).toBeUndefined();
    expect(conduitPayload(facts({ type: 'task.started' }))).toBeUndefined();
  });

  it('keeps every body under 1 MB', () => {
    const body = serializePayload({ task_id: 't', metadata: { blob: 'x'.repeat(MAX_PAYLOAD_BYTES) } });
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
    expect(JSON.parse(body)).toEqual({ task_id: 't', metadata: { truncated: true } });
  });
});

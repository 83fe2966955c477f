import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { RequestValidationPipe } from '../../common/validation.js';
import { CompleteDto, FailDto, HeartbeatDto, LeaseRequestDto } from './worker-protocol.dto.js';

// The plain checks (RequestValidationPipe's fast path) must never pass a body the decorators refuse. Each body
// here goes through both: a body the check passes must pass class-validator; the valid ones must pass the check.
const pipe = new RequestValidationPipe();
const byDecorators = async (dto: object, body: unknown) => {
  try {
    // The fast path is skipped for this call by giving the pipe a subclass without `accepts`.
    const slow = class extends (dto as new () => object) {};
    Object.defineProperty(slow, 'accepts', { value: undefined });
    await pipe.transform(body, { type: 'body', metatype: slow as never });
    return true;
  } catch {
    return false;
  }
};

const long = (n: number) => 'x'.repeat(n);
const cases: Array<[dto: object & { accepts(b: unknown): boolean }, body: unknown, valid: boolean]> = [
  [LeaseRequestDto, { worker_id: 'w-1', models: ['bench-*'], max_jobs: 1, wait_seconds: 30 }, true],
  [LeaseRequestDto, { worker_id: 'w', models: ['a', 'b'], kinds: ['image'], wait_seconds: 0.5, extra: 1 }, true],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'] }, true],
  [LeaseRequestDto, { worker_id: 'w', models: [] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a', 'a'] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a b'] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: [long(201)] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: Array.from({ length: 101 }, (_, i) => `m${i}`) }, false],
  [LeaseRequestDto, { worker_id: 'w', models: 'a' }, false],
  [LeaseRequestDto, { worker_id: 'w x', models: ['a'] }, false],
  [LeaseRequestDto, { worker_id: long(201), models: ['a'] }, false],
  [LeaseRequestDto, { models: ['a'] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], kinds: [] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], kinds: ['audio'] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], kinds: ['image', 'image'] }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], max_jobs: 0 }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], max_jobs: 1.5 }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], max_jobs: 33 }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], max_jobs: '2' }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], wait_seconds: 61 }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], wait_seconds: -1 }, false],
  [LeaseRequestDto, { worker_id: 'w', models: ['a'], wait_seconds: null }, true],
  [HeartbeatDto, {}, true],
  [HeartbeatDto, { progress: 42.5, message: 'half' }, true],
  [HeartbeatDto, { progress: 101 }, false],
  [HeartbeatDto, { progress: '5' }, false],
  [HeartbeatDto, { message: long(1_001) }, false],
  [HeartbeatDto, { message: 5 }, false],
  [CompleteDto, { outputs: [{ url: 'https://cdn.example/out.png', mime_type: 'image/png' }] }, true],
  [CompleteDto, { outputs: [{ artifact: 'image.png', metadata: { seed: 1 } }], revised_prompt: 'p' }, true],
  [CompleteDto, { outputs: [{}] }, true], // exactly one of artifact / url is the service's rule
  [CompleteDto, { outputs: [] }, false],
  [CompleteDto, { outputs: Array.from({ length: 33 }, () => ({ url: 'https://x/y' })) }, false],
  [CompleteDto, { outputs: [{ url: 'ftp://x/y' }] }, false],
  [CompleteDto, { outputs: [{ url: `https://x/${long(4_090)}` }] }, false],
  [CompleteDto, { outputs: [{ artifact: '.hidden' }] }, false],
  [CompleteDto, { outputs: [{ artifact: 'a/b' }] }, false],
  [CompleteDto, { outputs: [{ url: 'https://x/y', mime_type: 'png' }] }, false],
  [CompleteDto, { outputs: [{ url: 'https://x/y', metadata: [1] }] }, false],
  [CompleteDto, { outputs: ['https://x/y'] }, false],
  [CompleteDto, { outputs: [null] }, false],
  [CompleteDto, { outputs: { url: 'https://x/y' } }, false],
  [CompleteDto, { outputs: [{ url: 'https://x/y' }], revised_prompt: long(4_001) }, false],
  [CompleteDto, {}, false],
  [FailDto, { error: 'boom', code: 'content_policy', retryable: false }, true],
  [FailDto, { error: 'boom' }, true],
  [FailDto, {}, false],
  [FailDto, { error: long(2_001) }, false],
  [FailDto, { error: 'e', code: 'bad code' }, false],
  [FailDto, { error: 'e', retryable: 'yes' }, false],
];

describe('worker protocol bodies: the plain checks agree with the decorators', () => {
  it.each(cases.map(([dto, body, valid], i) => [i, (dto as unknown as { name: string }).name, body, valid] as const))(
    '#%i %s',
    async (_i, _name, body, valid) => {
      const [dto] = cases[_i];
      const decorators = await byDecorators(dto, body);
      expect(decorators).toBe(valid);
      // Never more lenient than the decorators; as lenient on the bodies workers send (null aside).
      if (dto.accepts(body)) expect(decorators).toBe(true);
      if (valid && !JSON.stringify(body).includes('null')) expect(dto.accepts(body)).toBe(true);
    },
  );
});

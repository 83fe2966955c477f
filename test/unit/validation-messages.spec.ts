import 'reflect-metadata';
import { plainToInstance } from 'class-transformer';
import { validate } from 'class-validator';
import { describe, expect, it } from 'vitest';
import { CreateEndpointDto, RecoverDto, UpdateEndpointDto } from '../../src/endpoints/dto/endpoint.dto.js';
import { CreateGenerationDto } from '../../src/tasks/dto/create-generation.dto.js';
import { fieldErrors } from '../../src/common/validation.js';

// As RequestValidationPipe validates: every failed constraint reported, the value kept for fieldErrors.
async function errorsOf<T extends object>(dto: new () => T, body: Record<string, unknown>) {
  const errors = await validate(plainToInstance(dto, body), {
    validationError: { target: false, value: true },
    forbidUnknownValues: false,
  });
  return Object.fromEntries(fieldErrors(errors).map((e) => [e.field, e.message]));
}

describe('validation messages name the real fault, one per field', () => {
  it('says a missing required field is required, not that it is too long', async () => {
    expect(await errorsOf(CreateGenerationDto, {})).toEqual({
      prompt: 'prompt is required',
      model: 'model is required',
    });
    expect(await errorsOf(CreateEndpointDto, {})).toEqual({ url: 'url is required' });
    expect(await errorsOf(RecoverDto, {})).toEqual({ since: 'since is required' });
  });

  it('says a value of the wrong type must be of the right one', async () => {
    const errors = await errorsOf(CreateGenerationDto, {
      prompt: 5,
      model: null,
      duration: 'six',
      fps: 'x',
      n: 2.5,
      size: 7,
      seed: '1',
      webhook_url: [],
      webhook_headers: 'h',
      webhook_events: 'completed',
      simulate: 'fast',
      webhook_retry: [],
    });
    expect(errors).toEqual({
      prompt: 'prompt must be a string',
      model: 'model must be a string',
      duration: 'duration must be a number',
      fps: 'fps must be an integer',
      n: 'n must be an integer',
      size: 'size must be a string',
      seed: 'seed must be an integer',
      webhook_url: 'webhook_url must be a string',
      webhook_headers: 'webhook_headers must be an object',
      webhook_events: 'webhook_events must be an array',
      simulate: 'simulate must be an object',
      webhook_retry: 'webhook_retry must be an object',
    });
    expect(await errorsOf(CreateEndpointDto, { url: 'https://x', secret: 5, events: 'task.completed' })).toEqual({
      secret: 'secret must be a string',
      events: 'events must be an array',
    });
  });

  it('gives the range, length or pattern fault of a value of the right type', async () => {
    const errors = await errorsOf(CreateGenerationDto, {
      prompt: 'x'.repeat(4_001),
      model: '',
      duration: 0,
      fps: 500,
      size: 'big',
      simulate: { fail_at_percent: 150 },
      webhook_retry: { schedule: ['soon', 3] },
    });
    expect(errors).toEqual({
      prompt: 'prompt must be shorter than or equal to 4000 characters',
      model: 'model should not be empty',
      duration: 'duration must not be less than 1',
      fps: 'fps must not be greater than 120',
      size: 'size must look like 1280x720',
      'simulate.fail_at_percent': 'fail_at_percent must not be greater than 100',
      'webhook_retry.schedule': 'each value in schedule must be a string',
    });
  });

  it('finds nothing in a valid body', async () => {
    expect(
      await errorsOf(CreateGenerationDto, { prompt: 'p', model: 'm', duration: 6, simulate: { fail_at_percent: 50 } }),
    ).toEqual({});
  });

  it('checks an endpoint update as a create, every field optional and the secret left to rotation', async () => {
    expect(await errorsOf(UpdateEndpointDto, {})).toEqual({});
    expect(
      await errorsOf(UpdateEndpointDto, {
        url: '',
        events: 'task.completed',
        rate_limit_per_second: 0,
        batch: { max_events: 500 },
      }),
    ).toEqual({
      url: 'url should not be empty',
      events: 'events must be an array',
      rate_limit_per_second: 'rate_limit_per_second must be at least 1 (null for no limit)',
      'batch.max_events': 'max_events must not be greater than 100',
    });
    expect(await errorsOf(UpdateEndpointDto, { secret: 'not-a-secret' })).toEqual({});
  });
});

import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { ArrayMaxSize, IsArray, IsString } from 'class-validator';
import { RequestValidationPipe, UniqueItems } from './validation.js';
import { DomainException } from './errors.js';

class Body {
  @IsArray()
  @ArrayMaxSize(3)
  @UniqueItems()
  @IsString({ each: true })
  names: string[];
}

async function refusal(value: unknown): Promise<{ field: string; message: string }[]> {
  try {
    await new RequestValidationPipe().transform(value, { type: 'body', metatype: Body });
  } catch (err) {
    return (err as DomainException).errors ?? [];
  }
  return [];
}

describe('RequestValidationPipe', () => {
  it('refuses duplicates, as class-validator ArrayUnique did', async () => {
    expect(await refusal({ names: ['a', 'a'] })).toEqual([
      { field: 'names', message: "names's elements must be unique" },
    ]);
    expect(await refusal({ names: ['a', 'b'] })).toEqual([]);
  });

  it('refuses an array over its ArrayMaxSize by its size alone, before its elements are looked at', async () => {
    const huge = Array.from({ length: 100_000 }, (_, i) => (i % 2 ? i : `n${i}`));
    expect(await refusal({ names: huge })).toEqual([
      { field: 'names', message: 'names must contain no more than 3 elements' },
    ]);
  });
});

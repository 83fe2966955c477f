import type { ValueTransformer } from 'typeorm';

/** Timestamps are stored as epoch milliseconds (bigint) so one schema serves SQLite and PostgreSQL. */
export const epochMs: ValueTransformer = {
  to: (value: Date | null | undefined) => (value instanceof Date ? value.getTime() : (value ?? null)),
  from: (value: string | number | null) => (value === null || value === undefined ? null : new Date(Number(value))),
};

/** A bigint that stays below 2^53 (counters): PostgreSQL's driver answers bigint as text, SQLite as a number. */
export const bigintNumber: ValueTransformer = {
  to: (value: number | null | undefined) => value ?? null,
  from: (value: string | number | null) => (value === null || value === undefined ? null : Number(value)),
};

import type { ValueTransformer } from 'typeorm';

/** Timestamps are stored as epoch milliseconds (bigint) so one schema serves SQLite and PostgreSQL. */
export const epochMs: ValueTransformer = {
  to: (value: Date | null | undefined) => (value instanceof Date ? value.getTime() : value ?? null),
  from: (value: string | number | null) => (value === null || value === undefined ? null : new Date(Number(value))),
};

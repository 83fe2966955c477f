import { Initial1763800000000 } from './1763800000000-Initial.js';
import { Deliveries1763900000000 } from './1763900000000-Deliveries.js';
import { Endpoints1764000000000 } from './1764000000000-Endpoints.js';
import { IdempotencyKeys1764100000000 } from './1764100000000-IdempotencyKeys.js';
import { UndispatchedIndex1764200000000 } from './1764200000000-UndispatchedIndex.js';
import { KeyCheck1765000000000 } from './1765000000000-KeyCheck.js';
import { Workers1765100000000 } from './1765100000000-Workers.js';
import { EventCursor1765200000000 } from './1765200000000-EventCursor.js';
import { DeliveryControls1765300000000 } from './1765300000000-DeliveryControls.js';
import { TaskTraceParent1765400000000 } from './1765400000000-TaskTraceParent.js';
import { BatchIndexes1765500000000 } from './1765500000000-BatchIndexes.js';
import { LeaseToken1765600000000 } from './1765600000000-LeaseToken.js';

/** Every migration, in order. Listed explicitly so the build needs no glob loading (ESM-safe). */
export const MIGRATIONS = [
  Initial1763800000000,
  Deliveries1763900000000,
  Endpoints1764000000000,
  IdempotencyKeys1764100000000,
  UndispatchedIndex1764200000000,
  KeyCheck1765000000000,
  Workers1765100000000,
  EventCursor1765200000000,
  DeliveryControls1765300000000,
  TaskTraceParent1765400000000,
  BatchIndexes1765500000000,
  LeaseToken1765600000000,
];

import { Initial1763800000000 } from './1763800000000-Initial.js';
import { Deliveries1763900000000 } from './1763900000000-Deliveries.js';
import { Endpoints1764000000000 } from './1764000000000-Endpoints.js';
import { IdempotencyKeys1764100000000 } from './1764100000000-IdempotencyKeys.js';
import { UndispatchedIndex1764200000000 } from './1764200000000-UndispatchedIndex.js';
import { KeyCheck1765000000000 } from './1765000000000-KeyCheck.js';
import { DeliveryControls1765300000000 } from './1765300000000-DeliveryControls.js';

/** Every migration, in order. Listed explicitly so the build needs no glob loading (ESM-safe). */
export const MIGRATIONS = [Initial1763800000000, Deliveries1763900000000, Endpoints1764000000000, IdempotencyKeys1764100000000, UndispatchedIndex1764200000000, KeyCheck1765000000000, DeliveryControls1765300000000];

import { exactRouteModels, isGlob, routeFor, type ModelRoute, type ProviderName } from '../config/model-routes.js';

export interface CatalogEntry {
  id: string;
  provider: ProviderName;
  kinds: Array<'video' | 'image'>;
  /** When the model was last known to be served: a worker's last lease request, or now for configured routes. */
  lastVerified: Date;
  /** When Herald first knew of it: a worker's first lease request, or the process start for configured routes. */
  created: Date;
}

export interface SeenWorker {
  models: readonly string[];
  kinds: readonly string[];
  firstSeenAt: Date;
  lastSeenAt: Date;
}

/**
 * The models to list (GET /v1/models, /v1/discovery/models): the exact ids of MODEL_ROUTES, then the exact ids
 * online workers named in their leases; never a glob. A model served by workers has the kinds those workers
 * lease; a route's model with no such worker has both kinds (Herald accepts either).
 */
export function modelCatalog(
  routes: readonly ModelRoute[],
  workers: readonly SeenWorker[],
  now: Date,
  startedAt: Date,
): CatalogEntry[] {
  const entries = new Map<string, CatalogEntry>();
  for (const route of exactRouteModels(routes)) {
    entries.set(route.pattern, {
      id: route.pattern,
      provider: route.provider,
      kinds: ['video', 'image'],
      lastVerified: now,
      created: startedAt,
    });
  }
  const served = new Map<string, { kinds: Set<string>; first: Date; last: Date }>();
  for (const worker of workers) {
    for (const model of worker.models) {
      if (isGlob(model)) continue;
      const s = served.get(model) ?? { kinds: new Set<string>(), first: worker.firstSeenAt, last: worker.lastSeenAt };
      worker.kinds.forEach((k) => s.kinds.add(k));
      if (worker.firstSeenAt < s.first) s.first = worker.firstSeenAt;
      if (worker.lastSeenAt > s.last) s.last = worker.lastSeenAt;
      served.set(model, s);
    }
  }
  for (const [id, s] of served) {
    // Only where the routes send it to workers: a worker naming a simulator model does not serve its tasks.
    if (routeFor(routes, id) !== 'workers') continue;
    const kinds = (['video', 'image'] as const).filter((k) => s.kinds.has(k));
    entries.set(id, {
      id,
      provider: 'workers',
      kinds,
      lastVerified: s.last,
      created: entries.get(id)?.created ?? s.first,
    });
  }
  return [...entries.values()];
}

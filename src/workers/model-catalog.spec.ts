import { describe, expect, it } from 'vitest';
import { modelCatalog } from './model-catalog.js';
import { parseModelRoutes } from '../config/model-routes.js';

const now = new Date('2026-12-01T10:00:00Z');
const start = new Date('2026-12-01T09:00:00Z');
const worker = (models: string[], kinds: string[], lastSeen = now) => ({
  models,
  kinds,
  firstSeenAt: start,
  lastSeenAt: lastSeen,
});

describe('model catalog', () => {
  it('lists the exact ids of the routes and of online workers, never globs', () => {
    const routes = parseModelRoutes('minimax-*=workers,dall-e-3=simulator,*=simulator');
    const list = modelCatalog(routes, [worker(['minimax-video', 'minimax-*'], ['video'])], now, start);
    expect(list.map((m) => [m.id, m.provider, m.kinds])).toEqual([
      ['dall-e-3', 'simulator', ['video', 'image']],
      ['minimax-video', 'workers', ['video']],
    ]);
  });

  it('gives a workers route the kinds its workers lease, and leaves out models the routes send elsewhere', () => {
    const routes = parseModelRoutes('flux=workers,*=simulator');
    const list = modelCatalog(
      routes,
      [worker(['flux'], ['image']), worker(['flux', 'sdxl'], ['image', 'video'])],
      now,
      start,
    );
    expect(list).toEqual([
      { id: 'flux', provider: 'workers', kinds: ['video', 'image'], lastVerified: now, created: start },
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { exactRouteModels, globMatches, globToSql, parseModelRoutes, routeFor } from './model-routes.js';

describe('model routes', () => {
  it('parses pattern=provider lists in order', () => {
    expect(parseModelRoutes('minimax-*=workers, dall-e-3=workers,*=simulator')).toEqual([
      { pattern: 'minimax-*', provider: 'workers' },
      { pattern: 'dall-e-3', provider: 'workers' },
      { pattern: '*', provider: 'simulator' },
    ]);
  });

  it('refuses unknown providers and malformed entries', () => {
    expect(() => parseModelRoutes('a=gpu')).toThrow(/provider "gpu"/);
    expect(() => parseModelRoutes('a')).toThrow(/not pattern=provider/);
    expect(() => parseModelRoutes('a=b=c')).toThrow(/not pattern=provider/);
    expect(() => parseModelRoutes(' , ')).toThrow(/at least one/);
  });

  it('routes by the first matching pattern, else to the simulator', () => {
    const routes = parseModelRoutes('minimax-fast=simulator,minimax-*=workers');
    expect(routeFor(routes, 'minimax-fast')).toBe('simulator');
    expect(routeFor(routes, 'minimax-video')).toBe('workers');
    expect(routeFor(routes, 'dall-e-3')).toBe('simulator');
  });

  it('matches globs with * only, case-sensitively, every other character literal', () => {
    expect(globMatches('minimax-*', 'minimax-')).toBe(true);
    expect(globMatches('minimax-*', 'minimax-video')).toBe(true);
    expect(globMatches('minimax-*', 'Minimax-video')).toBe(false);
    expect(globMatches('a.b*', 'aXb')).toBe(false);
    expect(globMatches('*-v?', 'x-v?')).toBe(true);
    expect(globMatches('*-v?', 'x-v2')).toBe(false);
    expect(globMatches('exact', 'exact')).toBe(true);
  });

  it('writes globs as LIKE patterns for PostgreSQL and GLOB patterns for SQLite, escaping their wildcards', () => {
    expect(globToSql('mini_max%-*', 'postgres')).toEqual({ operator: 'LIKE', pattern: 'mini\\_max\\%-%' });
    expect(globToSql('a\\b*', 'postgres').pattern).toBe('a\\\\b%');
    expect(globToSql('what?[x]-*', 'sqlite')).toEqual({ operator: 'GLOB', pattern: 'what[?][[]x]-*' });
  });

  it('lists the exact model ids of the routes, never globs', () => {
    expect(
      exactRouteModels(parseModelRoutes('a=workers,b-*=workers,a=simulator,c=simulator')).map((r) => r.pattern),
    ).toEqual(['a', 'c']);
  });
});

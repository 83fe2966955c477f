/**
 * Model routing and model globs, as pure rules. A glob's only wildcard is `*` (any run of characters, also none);
 * every other character is literal, and matching is case-sensitive, in JavaScript and in SQL alike.
 */
export const PROVIDERS = ['simulator', 'workers'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

export interface ModelRoute {
  pattern: string;
  provider: ProviderName;
}

const PATTERN = /^[^\s,=]{1,200}$/;

/** `pattern=provider,…` → routes in order. Throws with a message that completes "MODEL_ROUTES …". */
export function parseModelRoutes(text: string): ModelRoute[] {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  if (entries.length === 0) throw new Error('must list at least one pattern=provider');
  return entries.map((entry) => {
    const [pattern, provider, extra] = entry.split('=').map((p) => p.trim());
    if (extra !== undefined || !pattern || !provider) throw new Error(`entry "${entry}" is not pattern=provider`);
    if (!PATTERN.test(pattern))
      throw new Error(`pattern "${pattern}" must be 1–200 characters without spaces, commas or =`);
    if (!(PROVIDERS as readonly string[]).includes(provider))
      throw new Error(`provider "${provider}" must be one of ${PROVIDERS.join(', ')}`);
    return { pattern, provider: provider as ProviderName };
  });
}

export const isGlob = (pattern: string): boolean => pattern.includes('*');

export function globMatches(glob: string, model: string): boolean {
  if (!isGlob(glob)) return glob === model;
  const source = glob
    .split('*')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${source}$`, 's').test(model);
}

/** The provider of a model: the first route that matches; with no match, the simulator (today's behaviour). */
export function routeFor(routes: readonly ModelRoute[], model: string): ProviderName {
  return routes.find((r) => globMatches(r.pattern, model))?.provider ?? 'simulator';
}

/**
 * A glob as a SQL pattern. PostgreSQL: LIKE with `\` as the escape (LIKE there is case-sensitive). SQLite: GLOB,
 * whose `*` is ours and which is case-sensitive, where LIKE would not be; `?` and `[` are escaped as classes.
 */
export function globToSql(glob: string, dialect: 'postgres' | 'sqlite'): { operator: string; pattern: string } {
  if (dialect === 'postgres') {
    return { operator: `LIKE`, pattern: glob.replace(/[\\%_]/g, '\\$&').replace(/\*/g, '%') };
  }
  return { operator: 'GLOB', pattern: glob.replace(/[?[]/g, (c) => `[${c}]`) };
}

/** The exact model ids of the routes (globs name no model), in order, once each. */
export function exactRouteModels(routes: readonly ModelRoute[]): ModelRoute[] {
  const seen = new Set<string>();
  return routes.filter((r) => !isGlob(r.pattern) && !seen.has(r.pattern) && seen.add(r.pattern));
}

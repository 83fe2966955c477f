import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

export function Status({ value }: { value: string }) {
  return <span class={`status status-${value}`}>{value}</span>;
}

export function ProgressBar({ value, label }: { value: number; label: string }) {
  return (
    <progress max={100} value={value} aria-label={label}>
      {value}%
    </progress>
  );
}

/** Calls `tick` now and every `ms` while mounted (live lists). */
export function usePolling(tick: () => unknown, ms: number, deps: unknown[]) {
  const saved = useRef(tick);
  saved.current = tick;
  useEffect(() => {
    saved.current();
    const t = setInterval(() => saved.current(), ms);
    return () => clearInterval(t);
  }, deps);
}

export function Notice({ children, kind = 'info' }: { children: ComponentChildren; kind?: 'info' | 'error' }) {
  return (
    <p role={kind === 'error' ? 'alert' : 'status'} class={`notice ${kind}`}>
      {children}
    </p>
  );
}

export async function copy(text: string): Promise<void> {
  await navigator.clipboard?.writeText(text).catch(() => undefined);
}

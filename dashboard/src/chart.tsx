import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { countTicks, minuteTicks } from './chart-scale';

export interface MinuteBucket {
  minute: string;
  succeeded: number;
  failed: number;
}

const HEIGHT = 220;
const M = { top: 12, right: 24, bottom: 40, left: 48 };
const clock = (iso: string) =>
  new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });

/**
 * Stacked bars of deliveries per minute (succeeded below, failed on top) with a time axis and a count axis. Drawn
 * at the element's real width in pixels, so labels stay legible from a phone to a wide screen.
 */
export function DeliveriesChart({ buckets }: { buckets: MinuteBucket[] }) {
  const box = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(600);
  useLayoutEffect(() => {
    const el = box.current!;
    const observer = new ResizeObserver(() => setWidth(Math.max(240, Math.floor(el.clientWidth))));
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  const plotW = width - M.left - M.right;
  const plotH = HEIGHT - M.top - M.bottom;
  const ticks = countTicks(Math.max(0, ...buckets.map((b) => b.succeeded + b.failed)));
  const top = ticks[ticks.length - 1];
  const slot = plotW / Math.max(1, buckets.length);
  const y = (v: number) => M.top + plotH - (v / top) * plotH;
  const totals = buckets.reduce((t, b) => ({ ok: t.ok + b.succeeded, bad: t.bad + b.failed }), { ok: 0, bad: 0 });
  return (
    <figure class="chart" aria-labelledby="chart-title">
      <figcaption>
        <span id="chart-title" class="chart-title">
          Deliveries per minute, last hour
        </span>
        <span class="legend">
          <span class="swatch bar-ok" /> succeeded <span class="swatch bar-bad" /> failed
        </span>
      </figcaption>
      <div ref={box}>
        <svg
          width={width}
          height={HEIGHT}
          role="img"
          aria-label={`Deliveries per minute over the last hour: ${totals.ok} succeeded, ${totals.bad} failed`}
        >
          <g class="axis" aria-hidden="true">
            {ticks.map((t) => (
              <g key={t}>
                <line x1={M.left} x2={M.left + plotW} y1={y(t)} y2={y(t)} class={t === 0 ? 'baseline' : 'grid'} />
                <text x={M.left - 6} y={y(t)} text-anchor="end" dominant-baseline="middle">
                  {t}
                </text>
              </g>
            ))}
            {minuteTicks(
              buckets.map((b) => b.minute),
              slot,
            ).map((i) => (
              <g key={buckets[i].minute}>
                <line
                  x1={M.left + (i + 0.5) * slot}
                  x2={M.left + (i + 0.5) * slot}
                  y1={M.top + plotH}
                  y2={M.top + plotH + 4}
                  class="baseline"
                />
                <text x={M.left + (i + 0.5) * slot} y={M.top + plotH + 16} text-anchor="middle">
                  {clock(buckets[i].minute)}
                </text>
              </g>
            ))}
            <text x={M.left + plotW / 2} y={HEIGHT - 4} text-anchor="middle" class="axis-title">
              time (minute finished)
            </text>
            <text transform={`translate(12 ${M.top + plotH / 2}) rotate(-90)`} text-anchor="middle" class="axis-title">
              deliveries / min
            </text>
          </g>
          {buckets.map((b, i) => {
            const x = M.left + i * slot + slot * 0.1;
            const w = Math.max(1, slot * 0.8);
            return (
              <g key={b.minute}>
                <title>{`${clock(b.minute)}: ${b.succeeded} succeeded, ${b.failed} failed`}</title>
                <rect x={x} y={y(b.succeeded)} width={w} height={y(0) - y(b.succeeded)} class="bar-ok" />
                <rect
                  x={x}
                  y={y(b.succeeded + b.failed)}
                  width={w}
                  height={y(b.succeeded) - y(b.succeeded + b.failed)}
                  class="bar-bad"
                />
              </g>
            );
          })}
        </svg>
      </div>
    </figure>
  );
}

import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { renderPoster } from './png.js';

describe('renderPoster', () => {
  it('writes a valid RGB PNG whose pixels follow the seed’s diagonal gradient', () => {
    const [w, h, seed] = [7, 5, 0x123456];
    const png = renderPoster(w, h, seed);
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBe(w);
    expect(png.readUInt32BE(20)).toBe(h);
    // IHDR is 25 bytes from offset 8; IDAT follows: length, type, data.
    const idatLength = png.readUInt32BE(33);
    expect(png.subarray(37, 41).toString('ascii')).toBe('IDAT');
    const raw = inflateSync(png.subarray(41, 41 + idatLength));
    expect(raw).toHaveLength(h * (1 + 3 * w));
    const [r0, g0, b0] = [seed & 255, (seed >>> 8) & 255, (seed >>> 16) & 255];
    for (const [x, y] of [
      [0, 0],
      [6, 0],
      [3, 2],
      [6, 4],
    ]) {
      const t = (x + y) / (w + h);
      const at = y * (1 + 3 * w) + 1 + 3 * x;
      expect(raw[y * (1 + 3 * w)]).toBe(0);
      expect([raw[at], raw[at + 1], raw[at + 2]]).toEqual([
        (r0 + t * 200) & 255,
        (g0 + (1 - t) * 180) & 255,
        (b0 + t * 120) & 255,
      ]);
    }
  });
});

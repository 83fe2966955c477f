import { crc32, deflateSync } from 'node:zlib';

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body) >>> 0);
  return Buffer.concat([length, body, crc]);
}

/**
 * A real RGB PNG: a diagonal gradient whose colours come from the seed, so different tasks look different.
 * Cheap on purpose, since it runs for every simulated image: a pixel's colour depends only on x + y, so each row is
 * a copied slice of one diagonal strip, and compression uses zlib's fastest level. (Not zlib's async API: it would
 * queue on libuv's thread pool in front of SQLite's statements, which measured far worse.)
 */
export function renderPoster(width: number, height: number, seed: number): Buffer {
  const [r0, g0, b0] = [seed & 255, (seed >>> 8) & 255, (seed >>> 16) & 255];
  const diagonal = Buffer.alloc((width + height) * 3);
  for (let s = 0; s < width + height; s++) {
    const t = s / (width + height);
    diagonal[s * 3] = (r0 + t * 200) & 255;
    diagonal[s * 3 + 1] = (g0 + (1 - t) * 180) & 255;
    diagonal[s * 3 + 2] = (b0 + t * 120) & 255;
  }
  const row = 1 + width * 3;
  const raw = Buffer.alloc(row * height); // each row starts with filter 0 (none)
  for (let y = 0; y < height; y++) diagonal.copy(raw, y * row + 1, y * 3, (y + width) * 3);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.writeUInt8(8, 8); // bit depth
  header.writeUInt8(2, 9); // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 1 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

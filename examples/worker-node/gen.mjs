// A Herald worker handler: `herald worker --module examples/worker-node/gen.mjs` runs its default export on each job.
// It "generates" in ten steps (STEP_MS each), resumes from the progress a lost worker had reported, stops at once
// when the task is cancelled (ctx.signal), and uploads a real PNG poster as the task's output.
import { setTimeout as sleep } from 'node:timers/promises';
import { crc32, deflateSync } from 'node:zlib';

const STEP_MS = Number(process.env.STEP_MS ?? 300);

export default async function generate(job, ctx) {
  const [width, height] = (job.options.size ?? '256x256').split('x').map((n) => Math.min(512, Number(n) || 256));
  const seed = job.options.seed ?? [...job.task_id].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7);
  // Real work would call the model here; see docs/WORKERS.md for Replicate, ComfyUI and diffusers.
  for (let percent = Math.floor(job.resume_from_percent / 10) * 10 + 10; percent < 100; percent += 10) {
    await sleep(STEP_MS, undefined, { signal: ctx.signal }); // rejects as soon as the task is cancelled
    await ctx.progress(percent, `step ${percent / 10} of 10`);
  }
  const png = poster(width, height, seed);
  await ctx.upload('image.png', png, 'image/png');
  return [{ artifact: 'image.png', mime_type: 'image/png', metadata: { width, height, seed } }];
}

/** A small real PNG: a diagonal gradient whose colours come from the seed. */
export function poster(width, height, seed) {
  const row = 1 + width * 3;
  const raw = Buffer.alloc(row * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = (x + y) / (width + height);
      raw.set(
        [
          ((seed & 255) + t * 200) & 255,
          (((seed >>> 8) & 255) + (1 - t) * 180) & 255,
          (((seed >>> 16) & 255) + t * 120) & 255,
        ],
        y * row + 1 + x * 3,
      );
    }
  }
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const out = Buffer.alloc(8 + body.length + 4);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body) >>> 0, 4 + body.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2], 8); // 8-bit RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, readdir, readFile, rename, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import type { TaskResult } from '../tasks/task.entity.js';
import type { GeneratedArtifact } from './provider.js';
import { mediaTypeOf } from '../common/media-types.js';

export const ARTIFACT_NAME = /^[0-9a-f-]{36}-a\d{1,4}-\d{1,2}\.(png|mp4)$/;
/** A file a worker uploaded: `<task id>-a<attempt>-w-<the worker's name>`. */
export const UPLOADED_NAME = /^[0-9a-f-]{36}-a\d{1,4}-w-[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;

/** An upload went past ARTIFACT_MAX_BYTES; nothing of it is kept. */
export class ArtifactTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`artifact larger than ${limit} bytes`);
  }
}

export interface StoredUpload {
  name: string;
  sizeBytes: number;
  mimeType: string;
}

/** A name for shared bytes (GeneratedArtifact.sharedAs) that is safe as a file name. */
const SHARED_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * The folder of a task's files: its id's first eight characters, for a UUIDv7 the time it was created in steps of
 * about 65 s. A folder per task cost a new directory for every task, the largest part of storing a simulated
 * artifact (docs/BENCHMARKS.md, finding 42); a folder per minute of tasks costs one now and then.
 */
export function bucketOf(taskId: string): string {
  return taskId.slice(0, 8);
}

/** The task a stored file's name belongs to: names start with its id. */
const taskIdOf = (name: string) => name.slice(0, 36);

/**
 * Puts a new file at `tmp` (`put` fails on one that exists) and renames it over `file`. A temporary file a crash
 * left is removed first, never written through: it could be a link to a shared copy, and writing it would change
 * every artifact linked there.
 */
async function viaTemporary(tmp: string, file: string, put: (tmp: string) => Promise<void>): Promise<void> {
  await put(tmp).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
    await rm(tmp, { force: true });
    await put(tmp);
  });
  await rename(tmp, file);
}

/**
 * Generated files live under DATA_DIR/artifacts/<bucket>/ (bucketOf) and are served at /v1/artifacts/<name>; files
 * written before that layout stay readable in their folder per task, DATA_DIR/artifacts/<task id>/. Bytes a
 * provider marks as shared (the simulator's) are written once, under .shared/, and linked under each name.
 */
@Injectable()
export class ArtifactStore {
  private readonly dir: string;
  // The shared copies this process wrote (GeneratedArtifact.sharedAs), each once.
  private readonly shared = new Map<string, Promise<string>>();
  private links = true;
  // Folders this process made (or found) lately, so that a save does not ask for its folder every time.
  private readonly made = new Set<string>();

  constructor(@Inject(CONFIG) private readonly config: HeraldConfig) {
    this.dir = path.join(config.dataDir, 'artifacts');
  }

  private fileOf(name: string): string {
    return path.join(this.dir, bucketOf(name), name);
  }

  /** Where a file of the layout before bucketOf is. */
  private legacyFileOf(name: string): string {
    return path.join(this.dir, taskIdOf(name), name);
  }

  /** Where a stored file is now, in either layout; undefined when there is none. */
  private async locate(name: string): Promise<{ file: string; size: number } | undefined> {
    for (const file of [this.fileOf(name), this.legacyFileOf(name)]) {
      const found = await stat(file).catch(() => undefined);
      if (found) return { file, size: found.size };
    }
    return undefined;
  }

  /**
   * Writes an artifact's bytes under `file` so that a reader never sees half a file: shared bytes as a link to their
   * one copy, others written beside it and renamed. A second save of the same name replaces the first.
   */
  private async write(file: string, artifact: GeneratedArtifact): Promise<void> {
    const tmp = `${file}.tmp`;
    const shared = artifact.sharedAs && SHARED_NAME.test(artifact.sharedAs) ? artifact.sharedAs : undefined;
    for (let tries = 0; shared && this.links && tries < 2; tries++) {
      const copy = await this.sharedCopy(shared, artifact.bytes);
      try {
        return await link(copy, file);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') throw err;
        if (code === 'EEXIST') return viaTemporary(tmp, file, (t) => link(copy, t));
        // A copy at the filesystem's most links (65,000 on ext4): a fresh copy takes the next ones.
        if (code === 'EMLINK') this.shared.delete(shared);
        // A filesystem without hard links: every artifact a file of its own, as before .shared/.
        else this.links = false;
      }
    }
    return viaTemporary(tmp, file, (t) => writeFile(t, artifact.bytes, { flag: 'wx' }));
  }

  /** The one copy of shared bytes, under .shared/: a handful of files (the simulator's), never removed. */
  private sharedCopy(name: string, bytes: Buffer): Promise<string> {
    let copy = this.shared.get(name);
    if (!copy) {
      copy = (async () => {
        const dir = path.join(this.dir, '.shared');
        await mkdir(dir, { recursive: true });
        const file = path.join(dir, name);
        // Processes sharing DATA_DIR may write the same copy at once: each its own temporary file.
        await viaTemporary(`${file}.${process.pid}.tmp`, file, (t) => writeFile(t, bytes, { flag: 'wx' }));
        return file;
      })();
      this.shared.set(name, copy);
      copy.catch(() => this.shared.delete(name));
    }
    return copy;
  }

  async save(
    taskId: string,
    attempt: number,
    artifacts: GeneratedArtifact[],
    format: 'url' | 'b64_json',
  ): Promise<TaskResult['data']> {
    const dir = path.join(this.dir, bucketOf(taskId));
    if (!this.made.has(dir)) {
      await mkdir(dir, { recursive: true });
      // The folders of the last minutes are enough to know: retention empties old ones, and save makes them again.
      if (this.made.size >= 64) this.made.clear();
      this.made.add(dir);
    }
    return Promise.all(
      artifacts.map(async (artifact, index) => {
        const name = `${taskId}-a${attempt}-${index}.${artifact.extension}`;
        await this.write(this.fileOf(name), artifact).catch(async (err: NodeJS.ErrnoException) => {
          // Retention removes a folder it emptied, and an operator may clear .shared/: made again, once.
          if (err.code !== 'ENOENT') throw err;
          if (artifact.sharedAs) this.shared.delete(artifact.sharedAs);
          await mkdir(dir, { recursive: true });
          await this.write(this.fileOf(name), artifact);
        });
        const metadata = {
          ...(artifact.durationSeconds !== undefined ? { duration: artifact.durationSeconds } : {}),
          resolution: artifact.resolution,
          ...(artifact.fps !== undefined ? { fps: artifact.fps } : {}),
          file_size_bytes: artifact.bytes.length,
          mime_type: artifact.mimeType,
          seed: artifact.seed,
        };
        const inline = format === 'b64_json' && artifact.mimeType.startsWith('image/');
        return {
          ...(inline ? { b64_json: artifact.bytes.toString('base64') } : { url: this.urlOf(name) }),
          ...(artifact.revisedPrompt ? { revised_prompt: artifact.revisedPrompt } : {}),
          metadata,
        };
      }),
    );
  }

  /** The bytes and type of a stored artifact, or undefined for an unknown or malformed name. */
  async read(name: string): Promise<{ bytes: Buffer; mimeType: string } | undefined> {
    const found = await this.find(name);
    return found && { bytes: await readFile(found.file), mimeType: found.mimeType };
  }

  /** A stored artifact as a stream, for serving files of any size without holding them in memory. */
  async open(name: string): Promise<{ stream: Readable; sizeBytes: number; mimeType: string } | undefined> {
    const found = await this.find(name);
    return found && { stream: createReadStream(found.file), sizeBytes: found.sizeBytes, mimeType: found.mimeType };
  }

  private async find(name: string): Promise<{ file: string; sizeBytes: number; mimeType: string } | undefined> {
    if (ARTIFACT_NAME.test(name)) {
      const found = await this.locate(name);
      return (
        found && { file: found.file, sizeBytes: found.size, mimeType: mediaTypeOf(name) ?? 'application/octet-stream' }
      );
    }
    const meta = await this.uploadOf(name);
    const found = meta && (await this.locate(name));
    return found && { file: found.file, sizeBytes: meta.sizeBytes, mimeType: meta.mimeType };
  }

  /** Where an upload's type and size are kept: a folder no artifact name can reach (names never start with "."). */
  private metaOf(name: string, folder = bucketOf(name)): string {
    return path.join(this.dir, folder, '.meta', `${name}.json`);
  }

  static uploadName(taskId: string, attempt: number, name: string): string {
    return `${taskId}-a${attempt}-w-${name}`;
  }

  /**
   * Streams a worker's upload to disk, counting bytes as they pass: past `maxBytes` the write stops and nothing is
   * kept (ArtifactTooLarge). Written to a temporary file and renamed, so a reader never sees half a file, and a
   * second upload of the same name replaces the first whole.
   */
  async saveUpload(
    taskId: string,
    attempt: number,
    name: string,
    body: Readable,
    mimeType: string,
    maxBytes: number,
  ): Promise<StoredUpload> {
    const stored = ArtifactStore.uploadName(taskId, attempt, name);
    const file = this.fileOf(stored);
    const meta = path.join(this.dir, bucketOf(taskId), '.meta');
    await mkdir(meta, { recursive: true });
    const tmp = path.join(meta, `${stored}.upload-${randomBytes(8).toString('hex')}.tmp`);
    let size = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, done) {
        size += chunk.length;
        if (size > maxBytes) done(new ArtifactTooLarge(maxBytes));
        else done(null, chunk);
      },
    });
    try {
      await pipeline(body, limit, createWriteStream(tmp));
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const upload = { name: stored, sizeBytes: size, mimeType };
    await writeFile(this.metaOf(stored), JSON.stringify(upload));
    return upload;
  }

  /** An upload's type and size, or undefined when no such upload exists. */
  async uploadOf(name: string): Promise<StoredUpload | undefined> {
    if (!UPLOADED_NAME.test(name)) return undefined;
    for (const file of [this.metaOf(name), this.metaOf(name, taskIdOf(name))]) {
      const meta = await readFile(file, 'utf8').catch(() => undefined);
      if (meta !== undefined) return JSON.parse(meta) as StoredUpload;
    }
    return undefined;
  }

  urlOf(name: string): string {
    return `${this.config.publicBaseUrl}${ArtifactStore.pathOf(name)}`;
  }

  /** Where an artifact is served, whatever PUBLIC_BASE_URL was when its URL was written. */
  static pathOf(name: string): string {
    return `/v1/artifacts/${name}`;
  }

  /**
   * Deletes every stored artifact of these tasks (retention): their files in their folders (bucketOf), each folder
   * read once, a folder left empty removed; and the folders per task of the layout before.
   */
  async removeFor(taskIds: readonly string[]): Promise<void> {
    const ids = new Set(taskIds);
    const theirs = (names: string[]) => names.filter((n) => ids.has(taskIdOf(n)));
    const buckets = [...new Set(taskIds.map(bucketOf))].map((b) => path.join(this.dir, b));
    await Promise.all([
      ...buckets.map(async (dir) => {
        const meta = path.join(dir, '.meta');
        const [files, metas] = await Promise.all([readdir(dir), readdir(meta)].map((r) => r.catch(() => [])));
        await Promise.all([
          ...theirs(files).map((n) => rm(path.join(dir, n), { force: true })),
          ...theirs(metas).map((n) => rm(path.join(meta, n), { force: true })),
        ]);
        // A folder still in use is not empty, and stays.
        await rmdir(meta).catch(() => undefined);
        await rmdir(dir).catch(() => undefined);
      }),
      ...taskIds.map((id) => rm(path.join(this.dir, id), { recursive: true, force: true })),
    ]);
  }
}

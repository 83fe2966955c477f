import { Inject, Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
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

/** Generated files live under DATA_DIR/artifacts/<task id>/ and are served at /v1/artifacts/<name>. */
@Injectable()
export class ArtifactStore {
  private readonly dir: string;

  constructor(@Inject(CONFIG) private readonly config: HeraldConfig) {
    this.dir = path.join(config.dataDir, 'artifacts');
  }

  /** Files live in one folder per task, so retention removes a task's files in one step. */
  private fileOf(name: string): string {
    return path.join(this.dir, name.slice(0, 36), name);
  }

  async save(
    taskId: string,
    attempt: number,
    artifacts: GeneratedArtifact[],
    format: 'url' | 'b64_json',
  ): Promise<TaskResult['data']> {
    await mkdir(path.join(this.dir, taskId), { recursive: true });
    return Promise.all(
      artifacts.map(async (artifact, index) => {
        const name = `${taskId}-a${attempt}-${index}.${artifact.extension}`;
        const file = this.fileOf(name);
        // Write then rename, so a reader never sees half a file.
        await writeFile(`${file}.tmp`, artifact.bytes);
        await rename(`${file}.tmp`, file);
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
          ...(inline
            ? { b64_json: artifact.bytes.toString('base64') }
            : { url: `${this.config.publicBaseUrl}/v1/artifacts/${name}` }),
          ...(artifact.revisedPrompt ? { revised_prompt: artifact.revisedPrompt } : {}),
          metadata,
        };
      }),
    );
  }

  /** The bytes and type of a stored artifact, or undefined for an unknown or malformed name. */
  async read(name: string): Promise<{ bytes: Buffer; mimeType: string } | undefined> {
    const found = await this.open(name);
    if (!found) return undefined;
    return { bytes: await readFile(this.fileOf(name)), mimeType: found.mimeType };
  }

  /** A stored artifact as a stream, for serving files of any size without holding them in memory. */
  async open(name: string): Promise<{ stream: Readable; sizeBytes: number; mimeType: string } | undefined> {
    try {
      if (ARTIFACT_NAME.test(name)) {
        const { size } = await stat(this.fileOf(name));
        return {
          stream: createReadStream(this.fileOf(name)),
          sizeBytes: size,
          mimeType: mediaTypeOf(name) ?? 'application/octet-stream',
        };
      }
      if (UPLOADED_NAME.test(name)) {
        const meta = await this.uploadOf(name);
        if (!meta) return undefined;
        return { stream: createReadStream(this.fileOf(name)), sizeBytes: meta.sizeBytes, mimeType: meta.mimeType };
      }
    } catch {
      /* missing file */
    }
    return undefined;
  }

  /** Where an upload's type and size are kept: a folder no artifact name can reach (names never start with "."). */
  private metaOf(name: string): string {
    return path.join(this.dir, name.slice(0, 36), '.meta', `${name}.json`);
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
    await mkdir(path.join(this.dir, taskId, '.meta'), { recursive: true });
    const tmp = path.join(this.dir, taskId, '.meta', `upload-${randomBytes(8).toString('hex')}.tmp`);
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
    try {
      return JSON.parse(await readFile(this.metaOf(name), 'utf8')) as StoredUpload;
    } catch {
      return undefined;
    }
  }

  urlOf(name: string): string {
    return `${this.config.publicBaseUrl}${ArtifactStore.pathOf(name)}`;
  }

  /** Where an artifact is served, whatever PUBLIC_BASE_URL was when its URL was written. */
  static pathOf(name: string): string {
    return `/v1/artifacts/${name}`;
  }

  /** Deletes every stored artifact of a task (retention). */
  async removeFor(taskId: string): Promise<void> {
    await rm(path.join(this.dir, taskId), { recursive: true, force: true });
  }
}

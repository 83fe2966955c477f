import { Inject, Injectable } from '@nestjs/common';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import type { TaskResult } from '../tasks/task.entity.js';
import type { GeneratedArtifact } from './provider.js';

export const ARTIFACT_NAME = /^[0-9a-f-]{36}-a\d{1,4}-\d{1,2}\.(png|mp4)$/;
const MIME: Record<string, string> = { png: 'image/png', mp4: 'video/mp4' };

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

  async save(taskId: string, attempt: number, artifacts: GeneratedArtifact[], format: 'url' | 'b64_json'): Promise<TaskResult['data']> {
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
          ...(inline ? { b64_json: artifact.bytes.toString('base64') } : { url: `${this.config.publicBaseUrl}/v1/artifacts/${name}` }),
          ...(artifact.revisedPrompt ? { revised_prompt: artifact.revisedPrompt } : {}),
          metadata,
        };
      }),
    );
  }

  /** The bytes and type of a stored artifact, or undefined for an unknown or malformed name. */
  async read(name: string): Promise<{ bytes: Buffer; mimeType: string } | undefined> {
    if (!ARTIFACT_NAME.test(name)) return undefined;
    try {
      const bytes = await readFile(this.fileOf(name));
      return { bytes, mimeType: MIME[name.split('.').pop()!] };
    } catch {
      return undefined;
    }
  }

  /** Deletes every stored artifact of a task (retention). */
  async removeFor(taskId: string): Promise<void> {
    await rm(path.join(this.dir, taskId), { recursive: true, force: true });
  }
}

import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.js';
import { Controller, Get, Param, Res } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { FastifyReply } from 'fastify';
import { DataSource } from 'typeorm';
import { Public } from '../auth/auth.guard.js';
import { DomainException, ErrorCode } from '../common/errors.js';
import { Task } from '../tasks/task.entity.js';
import { ArtifactStore, UPLOADED_NAME } from './artifact-store.js';

/**
 * Generated files, public like a CDN URL: names carry the task's UUID, which is not guessable. A worker's upload is
 * served once its task has completed with it: one left out of the outputs, or of an attempt that failed or lost its
 * lease, is never public (and none is cached before the file is final).
 */
@Public()
@ApiTags('artifacts')
@Controller('v1/artifacts')
export class ArtifactsController {
  constructor(
    private readonly store: ArtifactStore,
    @InjectDataSource() private readonly db: DataSource,
  ) {}

  @Get(':name')
  @ApiOperation({ operationId: 'getArtifact', summary: 'Download a generated file (public, like a CDN URL)' })
  @ApiResponse({
    status: 200,
    description: 'The file, with its media type; cacheable for a day',
    content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
  })
  @ApiProblems(ErrorCode.NotFound)
  async get(@Param('name') name: string, @Res() res: FastifyReply): Promise<void> {
    const artifact =
      UPLOADED_NAME.test(name) && !(await this.published(name)) ? undefined : await this.store.open(name);
    if (!artifact) throw new DomainException(ErrorCode.NotFound, `No artifact named ${name}.`);
    // Streamed: a worker's video may be hundreds of megabytes.
    await res
      .header('Content-Type', artifact.mimeType)
      .header('Content-Length', String(artifact.sizeBytes))
      .header('Cache-Control', 'public, max-age=86400, immutable')
      .header('X-Content-Type-Options', 'nosniff')
      .send(artifact.stream);
  }

  /** Whether the upload's task completed with it among its outputs. */
  private async published(name: string): Promise<boolean> {
    const task = await this.db
      .getRepository(Task)
      .findOne({ where: { id: name.slice(0, 36) }, select: { id: true, status: true, result: true } });
    const path = ArtifactStore.pathOf(name);
    return task?.status === 'completed' && (task.result?.data ?? []).some((d) => d.url?.endsWith(path) === true);
  }
}

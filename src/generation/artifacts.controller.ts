import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.js';
import { Controller, Get, Param, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { Public } from '../auth/auth.guard.js';
import { DomainException, ErrorCode } from '../common/errors.js';
import { ArtifactStore } from './artifact-store.js';

/** Generated files, public like a CDN URL: names carry the task's UUID, which is not guessable. */
@Public()
@ApiTags('artifacts')
@Controller('v1/artifacts')
export class ArtifactsController {
  constructor(private readonly store: ArtifactStore) {}

  @Get(':name')
  @ApiOperation({ operationId: 'getArtifact', summary: 'Download a generated file (public, like a CDN URL)' })
  @ApiResponse({
    status: 200,
    description: 'The file, with its media type; cacheable for a day',
    content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
  })
  @ApiProblems(ErrorCode.NotFound)
  async get(@Param('name') name: string, @Res() res: FastifyReply): Promise<void> {
    const artifact = await this.store.open(name);
    if (!artifact) throw new DomainException(ErrorCode.NotFound, `No artifact named ${name}.`);
    // Streamed: a worker's video may be hundreds of megabytes.
    await res
      .header('Content-Type', artifact.mimeType)
      .header('Content-Length', String(artifact.sizeBytes))
      .header('Cache-Control', 'public, max-age=86400, immutable')
      .header('X-Content-Type-Options', 'nosniff')
      .send(artifact.stream);
  }
}

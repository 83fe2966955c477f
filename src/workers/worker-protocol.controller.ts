import { ApiBearerAuth, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { Body, Controller, HttpCode, Param, Post, Put, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import { WorkerAuth, WorkerOnly } from '../auth/auth.guard.js';
import type { WorkerPrincipal } from '../auth/worker-tokens.service.js';
import { ApiProblems } from '../common/api-problems.js';
import { ErrorCode } from '../common/errors.js';
import { drainRefusedBody, REFUSED_BODY_READ_MS, uploadContentType } from '../common/http-server.js';
import { validationFailed } from '../common/validation.js';
import {
  ARTIFACT_UPLOAD_NAME,
  CompleteDto,
  FailDto,
  HeartbeatDto,
  LeaseRequestDto,
} from './dto/worker-protocol.dto.js';
import { WorkerLeasesService } from './worker-leases.service.js';

/** PUT …/artifacts/{name}: its body reaches the handler as a stream (see useRawUploads in serve.ts). */
export const isArtifactUpload = (method: string, url: string) =>
  method === 'PUT' && /^\/v1\/worker\/leases\/[^/?]+\/artifacts\/[^/?]+/.test(url);

/** The worker protocol (docs/WORKERS.md): thin, the rules are in WorkerLeasesService. Worker tokens only. */
@WorkerOnly()
@ApiTags('workers')
@ApiBearerAuth()
@Controller('v1/worker/leases')
export class WorkerProtocolController {
  constructor(private readonly leases: WorkerLeasesService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({
    operationId: 'leaseJobs',
    summary: 'Lease jobs for the models this worker serves; long-polls up to wait_seconds when none is ready',
  })
  @ApiResponse({ status: 200, description: '{jobs: [...]}; empty when the wait ends with nothing ready' })
  @ApiProblems(ErrorCode.ValidationFailed)
  async lease(
    @WorkerAuth() worker: WorkerPrincipal,
    @Body() body: LeaseRequestDto,
    @Res({ passthrough: true }) res: FastifyReply,
  ) {
    const gone = new AbortController();
    const hungUp = () => {
      if (!res.raw.writableFinished) gone.abort();
    };
    res.raw.once('close', hungUp);
    try {
      return { jobs: await this.leases.lease(worker, body, gone.signal) };
    } finally {
      res.raw.off('close', hungUp);
    }
  }

  @Post(':leaseId/heartbeat')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'heartbeatLease',
    summary: 'Renew a lease and report progress; {cancel: true, reason} when the task was cancelled or timed out',
  })
  @ApiResponse({ status: 200, description: '{lease_expires_at, cancel: false} or {cancel: true, reason}' })
  @ApiProblems(ErrorCode.ValidationFailed, ErrorCode.LeaseNotFound, ErrorCode.LeaseExpired)
  heartbeat(@Param('leaseId') leaseId: string, @WorkerAuth() worker: WorkerPrincipal, @Body() body: HeartbeatDto) {
    return this.leases.heartbeat(leaseId, worker, body);
  }

  @Put(':leaseId/artifacts/:name')
  @HttpCode(201)
  @ApiOperation({
    operationId: 'uploadArtifact',
    summary: 'Upload an output file (raw bytes, streamed; up to ARTIFACT_MAX_BYTES) → 201 {url}',
  })
  @ApiResponse({ status: 201, description: '{name, url, size_bytes, mime_type}' })
  @ApiProblems(ErrorCode.ValidationFailed, ErrorCode.LeaseNotFound, ErrorCode.LeaseExpired, ErrorCode.PayloadTooLarge)
  async upload(
    @Param('leaseId') leaseId: string,
    @Param('name') name: string,
    @WorkerAuth() worker: WorkerPrincipal,
    @Req() req: FastifyRequest,
  ) {
    if (!ARTIFACT_UPLOAD_NAME.test(name)) {
      throw validationFailed([
        { field: 'name', message: 'must be 1–100 characters of A-Z a-z 0-9 . _ - and not start with "."' },
      ]);
    }
    const body = req.body instanceof Readable ? req.body : Readable.from([]);
    const declared = req.headers['content-length'] !== undefined ? Number(req.headers['content-length']) : undefined;
    const type =
      /^[\w.+-]+\/[\w.+-]+/.exec(uploadContentType(req.raw) ?? '')?.[0].toLowerCase() ?? 'application/octet-stream';
    try {
      return await this.leases.upload(
        leaseId,
        worker,
        name,
        body,
        type,
        Number.isFinite(declared) ? declared : undefined,
      );
    } finally {
      // An upload refused before its body was read (bad lease, too large): read and drop what is on the wire, up
      // to a bound, so the client gets the answer rather than a reset connection; past the bound, cut it off.
      body.on('error', () => undefined);
      void drainRefusedBody(body, UPLOAD_DRAIN_BYTES, REFUSED_BODY_READ_MS).then((ended) => ended || body.destroy());
    }
  }

  @Post(':leaseId/complete')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'completeLease',
    summary: 'Finish the task with its outputs (uploaded artifacts or URLs)',
  })
  @ApiResponse({ status: 200, description: '{task_id, status}' })
  @ApiProblems(ErrorCode.ValidationFailed, ErrorCode.LeaseNotFound, ErrorCode.LeaseExpired)
  complete(@Param('leaseId') leaseId: string, @WorkerAuth() worker: WorkerPrincipal, @Body() body: CompleteDto) {
    return this.leases.complete(leaseId, worker, body);
  }

  @Post(':leaseId/fail')
  @HttpCode(200)
  @ApiOperation({
    operationId: 'failLease',
    summary: 'Fail the task (error, code), or with retryable: true give it back to the queue',
  })
  @ApiResponse({ status: 200, description: '{task_id, status, requeued}' })
  @ApiProblems(ErrorCode.ValidationFailed, ErrorCode.LeaseNotFound, ErrorCode.LeaseExpired)
  fail(@Param('leaseId') leaseId: string, @WorkerAuth() worker: WorkerPrincipal, @Body() body: FailDto) {
    return this.leases.fail(leaseId, worker, body);
  }
}

// How much of a refused upload is still read and dropped before the connection is cut.
const UPLOAD_DRAIN_BYTES = 8 * 1_048_576;

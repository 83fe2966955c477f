import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.js';
import { Controller, Get, Inject } from '@nestjs/common';
import { HealthCheckService, HealthIndicatorService, TypeOrmHealthIndicator } from '@nestjs/terminus';
import { Public } from '../auth/auth.guard.js';
import { DomainException, ErrorCode } from '../common/errors.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { RedisConnection } from '../redis/redis.module.js';

@Public()
@ApiTags('operations')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly indicators: HealthIndicatorService,
    private readonly typeorm: TypeOrmHealthIndicator,
    private readonly redis: RedisConnection,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  /** The process is up and serving HTTP. */
  @Get('live')
  @ApiOperation({ operationId: 'getLiveness', summary: 'Liveness: the process serves HTTP' })
  live() {
    return { status: 'ok', version: this.config.version, role: this.config.role };
  }

  /** Ready for traffic: the database and Redis both answer. Down answers 503 problem+json naming what is down. */
  @Get('ready')
  @ApiOperation({ operationId: 'getReadiness', summary: 'Readiness: the database and Redis both answer' })
  @ApiResponse({ status: 200, description: 'Ready, with each check' })
  @ApiProblems(ErrorCode.ServiceUnavailable)
  async ready() {
    try {
      return await this.health.check([
        () => this.typeorm.pingCheck('database').withTimeout(2_000),
        () =>
          this.indicators
            .check('redis')
            .attempt(() => this.redis.ping())
            .withTimeout(2_000),
      ]);
    } catch (err) {
      const details = (err as { response?: { error?: Record<string, unknown> } }).response?.error ?? {};
      const down = Object.keys(details);
      throw new DomainException(
        ErrorCode.ServiceUnavailable,
        `Not ready: ${down.length ? down.join(' and ') : 'a dependency'} not answering.`,
      );
    }
  }
}

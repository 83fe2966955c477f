import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, LessThan, MoreThanOrEqual } from 'typeorm';
import type { QueryDeepPartialEntity } from 'typeorm/query-builder/QueryPartialEntity.js';
import { v7 as uuidv7 } from 'uuid';
import { generateWebhookSecret } from '../auth/keys.js';
import { DomainException, ErrorCode } from '../common/errors.js';
import { validationFailed } from '../common/validation.js';
import { CONFIG } from '../config/config.module.js';
import type { HeraldConfig } from '../config/config.js';
import { SecretBox } from '../crypto/secret-box.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { Delivery } from '../webhooks/delivery.entity.js';
import { Outbox } from '../webhooks/outbox.js';
import { webhookTargetErrors } from '../webhooks/webhook-target.js';
import { CreateEndpointDto, EndpointDeliveriesQuery, UpdateEndpointDto } from './dto/endpoint.dto.js';
import { ROTATION_OVERLAP_MS } from '../webhooks/endpoint-rules.js';
import { Endpoint } from '../webhooks/endpoint.entity.js';

export const endpointNotFound = (id: string) =>
  new DomainException(ErrorCode.EndpointNotFound, `No webhook endpoint with id ${id}.`);

/** Registered endpoints: CRUD, test events, secret rotation, recovery and their delivery log. */
@Injectable()
export class EndpointsService {
  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly box: SecretBox,
    private readonly outbox: Outbox,
    @Inject(CONFIG) private readonly config: HeraldConfig,
  ) {}

  async create(tenantId: string, dto: CreateEndpointDto): Promise<{ endpoint: Endpoint; secret: string }> {
    this.checkTarget(dto.url, dto.headers);
    const secret = dto.secret ?? generateWebhookSecret();
    const now = new Date();
    const endpoint = this.db.getRepository(Endpoint).create({
      id: uuidv7(),
      tenantId,
      url: dto.url,
      description: dto.description ?? null,
      events: dto.events ?? ['*'],
      ...this.sealHeaders(dto.headers),
      secretSealed: this.box.encrypt(secret),
      previousSecretSealed: null,
      previousSecretExpiresAt: null,
      status: dto.status ?? 'enabled',
      disabledReason: dto.status === 'disabled' ? 'disabled by its owner' : null,
      disabledAt: dto.status === 'disabled' ? now : null,
      failingSince: null,
      rateLimitPerSecond: dto.rate_limit_per_second ?? null,
      batchMaxEvents: dto.batch?.max_events ?? null,
      batchMaxWaitMs: dto.batch ? (dto.batch.max_wait_ms ?? 0) : null,
      lastDeliveryAt: null,
      lastStatusCode: null,
      lastOutcome: null,
      createdAt: now,
      updatedAt: now,
    });
    await this.uow.run((em) => em.insert(Endpoint, endpoint as QueryDeepPartialEntity<Endpoint>));
    return { endpoint, secret };
  }

  async list(tenantId: string): Promise<Endpoint[]> {
    return this.withCircuits(await this.db.getRepository(Endpoint).find({ where: { tenantId }, order: { id: 'ASC' } }));
  }

  async get(tenantId: string, id: string): Promise<Endpoint> {
    const endpoint = await this.db.getRepository(Endpoint).findOneBy({ id, tenantId });
    if (!endpoint) throw endpointNotFound(id);
    return (await this.withCircuits([endpoint]))[0];
  }

  /** Each endpoint with the circuit of its URL (shared with any other target of the same URL). */
  async withCircuits(endpoints: Endpoint[]): Promise<Endpoint[]> {
    const circuits = await this.outbox.circuitsOf(endpoints.map((e) => e.url));
    for (const e of endpoints) e.circuit = circuits.get(e.url);
    return endpoints;
  }

  async update(tenantId: string, id: string, dto: UpdateEndpointDto): Promise<Endpoint> {
    const endpoint = await this.get(tenantId, id);
    if (dto.url !== undefined || dto.headers !== undefined) this.checkTarget(dto.url ?? endpoint.url, dto.headers);
    const now = new Date();
    const patch: Partial<Endpoint> = { updatedAt: now };
    if (dto.url !== undefined) patch.url = dto.url;
    if (dto.events !== undefined) patch.events = dto.events;
    if (dto.description !== undefined) patch.description = dto.description;
    // Read at every claim: the new rate applies to every delivery not yet sent.
    if (dto.rate_limit_per_second !== undefined) patch.rateLimitPerSecond = dto.rate_limit_per_second;
    if (dto.batch !== undefined)
      Object.assign(patch, {
        batchMaxEvents: dto.batch?.max_events ?? null,
        batchMaxWaitMs: dto.batch ? (dto.batch.max_wait_ms ?? 0) : null,
      });
    if (dto.headers !== undefined) Object.assign(patch, this.sealHeaders(dto.headers));
    if (dto.status === 'enabled' && endpoint.status !== 'enabled') {
      Object.assign(patch, { status: 'enabled', disabledReason: null, disabledAt: null, failingSince: null });
    }
    if (dto.status === 'disabled' && endpoint.status !== 'disabled') {
      Object.assign(patch, { status: 'disabled', disabledReason: 'disabled by its owner', disabledAt: now });
    }
    await this.uow.run(async (em) => {
      await em.update(Endpoint, { id }, patch);
      // Batched or not, its deliveries not yet sent are handed out again the new way (in batches, or one by one).
      if (dto.batch !== undefined) await this.outbox.handOutAgain(em, id);
    });
    if (dto.batch !== undefined) this.outbox.kick();
    return this.get(tenantId, id);
  }

  async remove(tenantId: string, id: string): Promise<void> {
    await this.get(tenantId, id);
    await this.uow.run((em) => em.delete(Endpoint, { id, tenantId }));
  }

  /** Queues a `webhook.test` event for this endpoint alone. */
  async sendTest(tenantId: string, id: string): Promise<Delivery> {
    const endpoint = await this.get(tenantId, id);
    if (endpoint.status !== 'enabled')
      throw new DomainException(
        ErrorCode.EndpointDisabled,
        `Endpoint ${id} is disabled (${endpoint.disabledReason}); enable it first.`,
      );
    const [delivery] = await this.uow.run((em) =>
      this.outbox.recordOperational(em, [endpoint], 'webhook.test', {
        endpoint_id: endpoint.id,
        message: 'This is a test event from Herald.',
      }),
    );
    this.outbox.kick();
    return delivery;
  }

  /** A new secret signs from now on; the old one keeps signing alongside it for 24 hours. */
  async rotateSecret(tenantId: string, id: string): Promise<{ secret: string; previousSecretExpiresAt: Date }> {
    const endpoint = await this.get(tenantId, id);
    const secret = generateWebhookSecret();
    const previousSecretExpiresAt = new Date(Date.now() + ROTATION_OVERLAP_MS);
    await this.uow.run((em) =>
      em.update(
        Endpoint,
        { id },
        {
          secretSealed: this.box.encrypt(secret),
          previousSecretSealed: endpoint.secretSealed,
          previousSecretExpiresAt,
          updatedAt: new Date(),
        },
      ),
    );
    return { secret, previousSecretExpiresAt };
  }

  /** Sends again every delivery to this endpoint that failed since the given time (after an outage). */
  async recover(tenantId: string, id: string, since: Date): Promise<number> {
    const endpoint = await this.get(tenantId, id);
    if (endpoint.status !== 'enabled')
      throw new DomainException(
        ErrorCode.EndpointDisabled,
        `Endpoint ${id} is disabled (${endpoint.disabledReason}); enable it first.`,
      );
    const count = await this.uow.run(async (em) => {
      const failed = await em.find(Delivery, {
        where: { target: id, tenantId, status: 'failed', createdAt: MoreThanOrEqual(since) },
        order: { createdAt: 'ASC' },
        take: 10_000,
      });
      for (const delivery of failed) await this.outbox.copy(em, delivery);
      return failed.length;
    });
    if (count) this.outbox.kick();
    return count;
  }

  async deliveriesOf(
    tenantId: string,
    id: string,
    query: EndpointDeliveriesQuery,
  ): Promise<{
    data: Delivery[];
    next_cursor: string | null;
    stats: { succeeded: number; failed: number; success_rate: number | null };
  }> {
    await this.get(tenantId, id);
    const limit = query.limit ?? 20;
    const repo = this.db.getRepository(Delivery);
    const rows = await repo.find({
      where: {
        target: id,
        tenantId,
        ...(query.status ? { status: query.status as Delivery['status'] } : {}),
        ...(query.event_type ? { eventType: query.event_type as Delivery['eventType'] } : {}),
        ...(query.cursor ? { id: LessThan(query.cursor) } : {}),
      },
      order: { id: 'DESC' },
      take: limit + 1,
    });
    const [succeeded, failed] = await Promise.all([
      repo.countBy({ target: id, status: 'succeeded' }),
      repo.countBy({ target: id, status: 'failed' }),
    ]);
    const data = rows.slice(0, limit);
    return {
      data,
      next_cursor: rows.length > limit ? data[data.length - 1].id : null,
      stats: { succeeded, failed, success_rate: succeeded + failed ? succeeded / (succeeded + failed) : null },
    };
  }

  private checkTarget(url: string, headers: Record<string, unknown> | undefined): void {
    const errors = webhookTargetErrors(url, headers, this.config.webhook.allowedCidrs, {
      url: 'url',
      headers: 'headers',
    });
    if (errors.length) throw validationFailed(errors);
  }

  private sealHeaders(headers: Record<string, unknown> | undefined): Pick<Endpoint, 'headersSealed' | 'headerNames'> {
    const names = Object.keys(headers ?? {});
    return { headersSealed: names.length ? this.box.encrypt(JSON.stringify(headers)) : null, headerNames: names };
  }
}

import { Injectable, Logger } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, In, IsNull } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import { SecretBox } from '../crypto/secret-box.js';
import { UnitOfWork } from '../database/unit-of-work.js';
import { ApiKey } from './api-key.entity.js';
import { bearerToken, generateApiKey, generateWebhookSecret, hashApiKey, keyPrefix } from './keys.js';
import { Tenant } from './tenant.entity.js';

export interface Principal {
  tenantId: string;
  keyId: string;
}

export interface CreatedKey {
  id: string;
  tenant: string;
  tenantId: string;
  key: string;
}

// Revocation takes effect within this long in every process; it saves a DB read per request.
const AUTH_CACHE_MS = 5_000;

@Injectable()
export class ApiKeysService {
  private readonly logger = new Logger('ApiKeys');
  private readonly cache = new Map<string, { principal: Principal | null; until: number }>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly uow: UnitOfWork,
    private readonly box: SecretBox,
  ) {}

  async authenticate(authorization: string | undefined): Promise<Principal | null> {
    const token = bearerToken(authorization);
    if (!token || token.length > 512) return null;
    const hash = hashApiKey(token);
    const now = Date.now();
    const hit = this.cache.get(hash);
    if (hit && hit.until > now) return hit.principal;
    const key = await this.db.getRepository(ApiKey).findOneBy({ keyHash: hash, revokedAt: IsNull() });
    const principal = key ? { tenantId: key.tenantId, keyId: key.id } : null;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(hash, { principal, until: now + AUTH_CACHE_MS });
    return principal;
  }

  /**
   * Which of these keys are still valid, read from the database (not the cache): open streams ask this every few
   * seconds, so a revoked key's streams close as fast as its requests start failing.
   */
  async stillValid(keyIds: readonly string[]): Promise<Set<string>> {
    if (keyIds.length === 0) return new Set();
    const rows = await this.db
      .getRepository(ApiKey)
      .find({ where: { id: In([...keyIds]), revokedAt: IsNull() }, select: { id: true } });
    return new Set(rows.map((r) => r.id));
  }

  async createKey(tenantName: string, label?: string, presetKey?: string): Promise<CreatedKey> {
    const key = presetKey ?? generateApiKey();
    return this.uow.run(async (em) => {
      let tenant = await em.findOneBy(Tenant, { name: tenantName });
      if (!tenant) {
        tenant = em.create(Tenant, {
          id: uuidv7(),
          name: tenantName,
          webhookSecretSealed: this.box.encrypt(generateWebhookSecret()),
          eventCursor: 0,
          createdAt: new Date(),
        });
        await em.insert(Tenant, tenant);
      }
      const row = em.create(ApiKey, {
        id: uuidv7(),
        tenantId: tenant.id,
        label: label ?? null,
        prefix: keyPrefix(key),
        keyHash: hashApiKey(key),
        createdAt: new Date(),
        revokedAt: null,
      });
      await em.insert(ApiKey, row);
      return { id: row.id, tenant: tenant.name, tenantId: tenant.id, key };
    });
  }

  async listKeys(): Promise<
    Array<{ id: string; tenant: string; label: string | null; prefix: string; createdAt: Date; revokedAt: Date | null }>
  > {
    const tenants = new Map((await this.db.getRepository(Tenant).find()).map((t) => [t.id, t.name]));
    const keys = await this.db.getRepository(ApiKey).find({ order: { createdAt: 'ASC' } });
    return keys.map((k) => ({
      id: k.id,
      tenant: tenants.get(k.tenantId) ?? k.tenantId,
      label: k.label,
      prefix: k.prefix,
      createdAt: k.createdAt,
      revokedAt: k.revokedAt,
    }));
  }

  async revokeKey(id: string): Promise<boolean> {
    return this.uow.run(async (em) => {
      const result = await em.update(ApiKey, { id, revokedAt: IsNull() }, { revokedAt: new Date() });
      return (result.affected ?? 0) > 0;
    });
  }

  /**
   * On first start with no key at all, creates one for tenant "default": BOOTSTRAP_API_KEY if given, else a
   * random one, which is returned so the caller prints it once.
   */
  async bootstrap(presetKey: string | undefined): Promise<CreatedKey | null> {
    if ((await this.db.getRepository(ApiKey).count()) > 0) return null;
    try {
      return await this.createKey('default', 'bootstrap', presetKey);
    } catch (err) {
      // Another process bootstrapped at the same moment; its key stands.
      this.logger.warn(`bootstrap key not created: ${(err as Error).message}`);
      return null;
    }
  }

  async webhookSecret(tenantId: string): Promise<string> {
    const tenant = await this.db.getRepository(Tenant).findOneByOrFail({ id: tenantId });
    return this.box.decrypt(tenant.webhookSecretSealed);
  }
}

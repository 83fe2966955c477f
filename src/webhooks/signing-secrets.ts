import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Tenant } from '../auth/tenant.entity.js';
import { SecretBox } from '../crypto/secret-box.js';

// Secrets change only on rotation; a short cache spares a read and a decryption per delivery.
const CACHE_MS = 30_000;

/** The secrets a delivery is signed with: the tenant's for per-request webhooks. */
@Injectable()
export class SigningSecrets {
  private readonly cache = new Map<string, { secrets: string[]; until: number }>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly box: SecretBox,
  ) {}

  async forTenant(tenantId: string): Promise<string[]> {
    const hit = this.cache.get(tenantId);
    if (hit && hit.until > Date.now()) return hit.secrets;
    const tenant = await this.db.getRepository(Tenant).findOneByOrFail({ id: tenantId });
    const secrets = [this.box.decrypt(tenant.webhookSecretSealed)];
    this.cache.set(tenantId, { secrets, until: Date.now() + CACHE_MS });
    return secrets;
  }
}

import type { Cidr } from '../config/cidrs.js';
import { DomainException, ErrorCode, FieldError } from '../common/errors.js';
import { checkWebhookUrl } from './address-policy.js';
import { webhookHeaderErrors } from './webhook-headers.js';

/**
 * The rules a webhook target meets when it is given: a task's webhook_url and webhook_headers, an endpoint's url and
 * headers. A blocked address throws 422 webhook_url_blocked at once; other faults come back to join the request's
 * other field errors. `fields` names the two fields as the request does.
 */
export function webhookTargetErrors(
  url: string | null | undefined,
  headers: Record<string, unknown> | null | undefined,
  allowed: readonly Cidr[],
  fields: { url: string; headers: string },
): FieldError[] {
  const errors: FieldError[] = [];
  if (url !== undefined && url !== null) {
    const verdict = checkWebhookUrl(url, allowed);
    if (!verdict.ok && verdict.blocked)
      throw new DomainException(ErrorCode.WebhookUrlBlocked, `${fields.url} ${verdict.reason}.`, [
        { field: fields.url, message: verdict.reason },
      ]);
    if (!verdict.ok) errors.push({ field: fields.url, message: verdict.reason });
  }
  if (headers) errors.push(...webhookHeaderErrors(headers, fields.headers));
  return errors;
}

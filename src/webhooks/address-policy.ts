import ipaddr from 'ipaddr.js';

import type { Cidr } from '../config/cidrs.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses are judged as the IPv4 they carry. */
function normalize(address: Address): Address {
  if (address.kind() === 'ipv6') {
    const v6 = address as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) return v6.toIPv4Address();
    const parts = v6.parts;
    if (parts.slice(0, 6).every((p) => p === 0) && (parts[6] !== 0 || parts[7] > 1)) {
      return ipaddr.IPv4.parse(`${parts[6] >> 8}.${parts[6] & 255}.${parts[7] >> 8}.${parts[7] & 255}`);
    }
  }
  return address;
}

function inAny(address: Address, allowed: readonly Cidr[]): boolean {
  return allowed.some(([range, bits]) => range.kind() === address.kind() && address.match(range, bits));
}

/**
 * Whether a webhook may connect to this IP. Only globally routable unicast is allowed; loopback, private,
 * link-local (cloud metadata), CGNAT, multicast, reserved, unspecified, ULA, 6to4/Teredo/NAT64 and every other
 * special range are refused unless an operator opened them with WEBHOOK_ALLOWED_CIDRS.
 */
export function isAddressAllowed(ip: string, allowed: readonly Cidr[] = []): boolean {
  if (!ipaddr.isValid(ip)) return false;
  const raw = ipaddr.parse(ip);
  const address = normalize(raw);
  if (inAny(address, allowed) || inAny(raw, allowed)) return true;
  return address.range() === 'unicast';
}

/** The IP a URL host names literally (brackets stripped), or undefined for a DNS name. WHATWG URL has already normalised 0x7f.1, 2130706433 and the like. */
export function literalAddress(hostname: string): string | undefined {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return ipaddr.isValid(host) && (host.includes(':') || ipaddr.IPv4.isValidFourPartDecimal(host)) ? host : undefined;
}

export type UrlVerdict = { ok: true; url: URL } | { ok: false; blocked: boolean; reason: string };

/** The rules a webhook URL must meet before anything is stored: http(s), no credentials, no blocked literal address. */
export function checkWebhookUrl(text: string, allowed: readonly Cidr[] = []): UrlVerdict {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { ok: false, blocked: false, reason: 'must be an absolute http(s) URL' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { ok: false, blocked: false, reason: 'must use http or https' };
  if (url.username || url.password)
    return { ok: false, blocked: false, reason: 'must not contain credentials; send them in webhook_headers' };
  if (!url.hostname) return { ok: false, blocked: false, reason: 'must have a host' };
  const literal = literalAddress(url.hostname);
  if (literal !== undefined && !isAddressAllowed(literal, allowed)) {
    return {
      ok: false,
      blocked: true,
      reason: `points to ${literal}, an address webhooks may not reach (private, loopback, link-local or reserved)`,
    };
  }
  const name = url.hostname.toLowerCase().replace(/\.$/, '');
  if (
    literal === undefined &&
    (name === 'localhost' || name.endsWith('.localhost')) &&
    !isAddressAllowed('127.0.0.1', allowed)
  ) {
    return { ok: false, blocked: true, reason: 'points to localhost, which webhooks may not reach' };
  }
  return { ok: true, url };
}

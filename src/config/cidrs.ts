import ipaddr from 'ipaddr.js';

export type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Ranges as given (`127.0.0.0/8`), parsed once where the config is read; throws naming the first bad one. */
export function parseCidrs(cidrs: readonly string[]): Cidr[] {
  return cidrs.map((cidr) => {
    if (!/^[0-9a-fA-F:.]+\/\d{1,3}$/.test(cidr) || !ipaddr.isValidCIDR(cidr))
      throw new Error(`"${cidr}" is not a CIDR range like 127.0.0.0/8`);
    return ipaddr.parseCIDR(cidr);
  });
}

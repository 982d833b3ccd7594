// The client's address, for per-address limits (failed authentications). uWS gives the peer
// address as text: "127.0.0.1", or for a dual-stack listener an uncompressed IPv6 form
// ("0000:0000:0000:0000:0000:ffff:7f00:0001" for 127.0.0.1). Behind a proxy every client has the
// proxy's address, so when the peer is a trusted proxy (WALCAST_TRUSTED_PROXIES) the rightmost
// X-Forwarded-For entry that is not itself a trusted proxy is the client.
import net from 'node:net';

/** A canonical text form: IPv4 dotted (also for IPv4-mapped IPv6), IPv6 lower-case without leading zeros. */
export function normalizeAddress(raw: string): string {
  const a = raw.trim().toLowerCase().replace(/^\[|\]$/g, '');
  if (net.isIPv4(a)) return a;
  if (!a.includes(':')) return a;
  const groups = expandIPv6(a);
  if (!groups) return a;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join('.');
  }
  return groups.map((g) => g.toString(16)).join(':');
}

function expandIPv6(a: string): number[] | null {
  let s = a;
  // An embedded IPv4 tail (::ffff:1.2.3.4).
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const p = v4[1]!.split('.').map(Number);
    s = s.slice(0, -v4[1]!.length) + `${((p[0]! << 8) | p[1]!).toString(16)}:${((p[2]! << 8) | p[3]!).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
  const all = [...head, ...Array<string>(Math.max(0, fill)).fill('0'), ...tail];
  if (all.length !== 8 || !all.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return null;
  return all.map((g) => parseInt(g, 16));
}

type Matcher = (addr: string) => boolean;

function matcher(spec: string): Matcher {
  const [base, bits] = spec.split('/');
  const addr = normalizeAddress(base!);
  if (bits === undefined) return (a) => a === addr;
  const n = Number(bits);
  if (!net.isIPv4(addr) || !Number.isInteger(n) || n < 0 || n > 32) throw new Error(`WALCAST_TRUSTED_PROXIES: ${spec} is not an address or an IPv4 CIDR`);
  const mask = n === 0 ? 0 : (~0 << (32 - n)) >>> 0;
  const want = (ipv4(addr) & mask) >>> 0;
  return (a) => net.isIPv4(a) && ((ipv4(a) & mask) >>> 0) === want;
}

const ipv4 = (a: string) => a.split('.').reduce((acc, x) => ((acc << 8) | Number(x)) >>> 0, 0);

const PEERS_MAX = 10_000;

export class ClientAddresses {
  private readonly trusted: Matcher[];

  constructor(trustedProxies: readonly string[] = []) {
    this.trusted = trustedProxies.map(matcher);
  }

  private isTrusted(a: string): boolean {
    return this.trusted.some((m) => m(a));
  }

  /** Peers seen lately, normalised: a connection's requests come from one peer, and normalising costs a few µs. */
  private readonly peers = new Map<string, string>();

  /** The client's address from the peer address (uWS text) and the X-Forwarded-For header. */
  of(peer: string, forwardedFor: string): string {
    let client = this.peers.get(peer);
    if (client === undefined) {
      if (this.peers.size >= PEERS_MAX) this.peers.clear();
      this.peers.set(peer, (client = normalizeAddress(peer)));
    }
    if (!this.trusted.length || !this.isTrusted(client) || !forwardedFor) return client;
    const hops = forwardedFor.split(',').map((h) => h.trim()).filter(Boolean);
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalizeAddress(hops[i]!);
      if (!net.isIP(hop)) break;
      client = hop;
      if (!this.isTrusted(hop)) break;
    }
    return client;
  }
}

/** The peer address of a uWS response/socket as text. */
export const peerAddress = (x: { getRemoteAddressAsText(): ArrayBuffer }): string => Buffer.from(x.getRemoteAddressAsText()).toString();

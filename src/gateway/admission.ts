// Who may open a socket, decided before anything costly: refused while draining, beyond the
// connection cap, or when the upgrade token bucket is empty. Each refusal carries a retry hint;
// a bucket refusal books the next free slot, so refused clients come back spread out at the
// bucket's rate instead of all at once.
import { readFileSync } from 'node:fs';
import type { Config } from '../config.js';
import { WalcastError } from '../errors.js';
import { TokenBucket } from '../util/token-bucket.js';

/**
 * File descriptors kept free for the database pool, Redis and sockets being refused. Without a
 * cap, a gateway at its open-files limit makes uSockets spin on a failing accept() at 100% CPU.
 */
const FD_HEADROOM = 512;

export interface Refusal {
  error: WalcastError;
  /** For the refused-upgrades metric. */
  reason: 'closing' | 'full' | 'rate_limited';
}

export class Admission {
  private readonly upgrades: TokenBucket;
  /** WALCAST_WS_MAX_CONNECTIONS, or (when 0) the process's open-files limit minus headroom. */
  readonly maxConnections: number;
  closing = false;

  constructor(private readonly g: Config['gateway']) {
    this.upgrades = new TokenBucket(g.upgradeRate, g.upgradeBurst);
    this.maxConnections = g.maxConnections > 0 ? g.maxConnections : Math.max(0, openFilesLimit() - FD_HEADROOM);
  }

  /** Null when a new upgrade may go ahead, else why not and when to come back. */
  admit(openConnections: number): Refusal | null {
    if (this.closing) return this.refuseClosing();
    if (this.maxConnections > 0 && openConnections >= this.maxConnections) {
      const hint = Math.min(this.g.retryHintMaxMs, 1000 + Math.floor(Math.random() * 4000));
      return { error: new WalcastError('unavailable', 'gateway is full', { retryAfterMs: hint }), reason: 'full' };
    }
    if (!this.upgrades.take()) {
      const hint = this.upgrades.reserve(this.g.retryHintMaxMs);
      return { error: new WalcastError('rate_limited', 'too many new connections; retry later', { retryAfterMs: hint }), reason: 'rate_limited' };
    }
    return null;
  }

  /** Returns the upgrade token of an upgrade refused later (a bad token, a user over their limit): failures are charged per address instead. */
  giveBack(): void {
    this.upgrades.give();
  }

  refuseClosing(): Refusal {
    return { error: new WalcastError('unavailable', 'gateway is shutting down', { retryAfterMs: this.drainHint() }), reason: 'closing' };
  }

  /** A random delay in [0, WALCAST_DRAIN_RETRY_MS]: clients of a draining gateway come back spread out. */
  drainHint(): number {
    return Math.floor(Math.random() * (this.g.drainRetryMs + 1));
  }
}

/** The soft RLIMIT_NOFILE on Linux (0 when unknown). */
function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

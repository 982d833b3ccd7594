// Token lifetime on open sockets, cheap at 100k sockets: no timer per socket. One coarse timer
// wheel per gateway (1 s buckets, one interval) holds each socket's next event:
//   auth     a socket opened without a token must authenticate by then (close 4002);
//   warn     30 s before `exp`: send `token_expiring` (at once if less remains);
//   expire   at `exp`: close 4001 unless an `auth` frame moved `exp` meanwhile.
// Events fire late by at most one bucket, never early. The bookkeeping lives in three number
// fields of the subject, so anything with them (a WebSocket connection today, an SSE stream
// later) can be tracked; what an event does is up to the caller.

export interface LifetimeSubject {
  /** When the current token expires, ms since the epoch (0: not authenticated yet). */
  expiresAt: number;
  /** @internal Next event: 0 none, 1 auth deadline, 2 warn, 3 expire. */
  lifeStage: number;
  /** @internal The wheel bucket holding the next event. */
  lifeBucket: number;
}

export interface LifetimeEvents<T> {
  /** No `auth` frame in time. */
  authTimeout(s: T): void;
  /** The token expires at `expiresAt` (ms): ask for a fresh one. */
  expiring(s: T, expiresAt: number): void;
  /** The token expired. */
  expired(s: T): void;
}

export interface LifetimeOptions {
  /** How long before expiry `expiring` fires. */
  warnAheadMs: number;
  /** How long an unauthenticated subject may wait for `auth`. */
  authTimeoutMs: number;
  /** Bucket width (default 1000 ms). */
  resolutionMs?: number;
  now?: () => number;
}

const NONE = 0;
const AUTH = 1;
const WARN = 2;
const EXPIRE = 3;

export class TokenLifetimes<T extends LifetimeSubject> {
  private readonly buckets = new Map<number, Set<T>>();
  private readonly res: number;
  private readonly now: () => number;
  /** Last bucket fired. */
  private fired: number;
  private timer: NodeJS.Timeout | null = null;
  private tracked = 0;

  constructor(
    private readonly events: LifetimeEvents<T>,
    private readonly o: LifetimeOptions,
  ) {
    this.res = o.resolutionMs ?? 1000;
    this.now = o.now ?? Date.now;
    this.fired = Math.floor(this.now() / this.res);
  }

  /** Subjects with a pending event. */
  get size(): number {
    return this.tracked;
  }

  /** An unauthenticated subject: it must call `authed` within authTimeoutMs. */
  awaitAuth(s: T): void {
    this.schedule(s, AUTH, this.now() + this.o.authTimeoutMs);
  }

  /** The subject's token (new or replaced) expires at `expiresAt` (ms). */
  authed(s: T, expiresAt: number): void {
    s.expiresAt = expiresAt;
    const now = this.now();
    if (expiresAt - now <= this.o.warnAheadMs) {
      this.schedule(s, EXPIRE, expiresAt);
      this.events.expiring(s, expiresAt);
    } else {
      this.schedule(s, WARN, expiresAt - this.o.warnAheadMs);
    }
  }

  /** The subject is gone. */
  forget(s: T): void {
    this.unschedule(s);
  }

  /** Fires every bucket that is due; the interval calls it, tests may too. */
  tick(): void {
    const due = Math.floor(this.now() / this.res);
    while (this.fired < due) {
      const key = ++this.fired;
      const bucket = this.buckets.get(key);
      if (!bucket) continue;
      this.buckets.delete(key);
      for (const s of bucket) {
        if (s.lifeBucket !== key) continue;
        const stage = s.lifeStage;
        s.lifeStage = NONE;
        this.tracked--;
        this.fire(s, stage);
      }
    }
    if (this.tracked === 0) this.stop();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private fire(s: T, stage: number): void {
    try {
      if (stage === AUTH) this.events.authTimeout(s);
      else if (stage === WARN) {
        this.schedule(s, EXPIRE, s.expiresAt);
        this.events.expiring(s, s.expiresAt);
      } else if (stage === EXPIRE) {
        if (s.expiresAt > this.now()) this.schedule(s, EXPIRE, s.expiresAt);
        else this.events.expired(s);
      }
    } catch {
      // A subject's handler failing must not stop the wheel for the others.
    }
  }

  private schedule(s: T, stage: number, at: number): void {
    this.unschedule(s);
    // Never early: the bucket whose start is at or after `at`; never in the past.
    const key = Math.max(Math.ceil(at / this.res), this.fired + 1);
    let bucket = this.buckets.get(key);
    if (!bucket) this.buckets.set(key, (bucket = new Set()));
    bucket.add(s);
    s.lifeStage = stage;
    s.lifeBucket = key;
    this.tracked++;
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.res);
      this.timer.unref();
    }
  }

  private unschedule(s: T): void {
    if (s.lifeStage === NONE) return;
    const bucket = this.buckets.get(s.lifeBucket);
    if (bucket) {
      bucket.delete(s);
      if (bucket.size === 0) this.buckets.delete(s.lifeBucket);
    }
    s.lifeStage = NONE;
    this.tracked--;
  }
}

// chat.postMessage rate limits, per user and per channel (token buckets, per API process).
import { KeyedLimiter } from '../util/token-bucket.js';

export interface PostLimits {
  userRate: number;
  userBurst: number;
  channelRate: number;
  channelBurst: number;
}

/** chat.postMessage limits: per user and per channel; 0 ms means allowed. */
export class PostRateLimiter {
  private readonly users: KeyedLimiter;
  private readonly channels: KeyedLimiter;

  constructor(l: PostLimits, now?: () => number) {
    this.users = new KeyedLimiter(l.userRate, l.userBurst, now);
    this.channels = new KeyedLimiter(l.channelRate, l.channelBurst, now);
  }

  /** 0 when the post may go ahead; otherwise how long to wait, and which limit said no. */
  check(user: string, channel: string): { waitMs: number; scope?: 'user' | 'channel' } {
    const u = this.users.check(user);
    if (u > 0) return { waitMs: u, scope: 'user' };
    const c = this.channels.check(channel);
    if (c > 0) {
      this.users.refund(user);
      return { waitMs: c, scope: 'channel' };
    }
    return { waitMs: 0 };
  }
}

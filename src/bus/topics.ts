// How bus events travel on Redis (one node or a cluster): one topic per channel, one control
// topic every gateway holds, JSON payloads, and the shape check every received event passes
// before a gateway trusts it. Shared by every Redis backend.
import { channelOf, type BusEvent } from './bus.js';

export const TOPIC_PREFIX = 'walcast:ch:';
export const CONTROL_TOPIC = 'walcast:ctl';

/** A channel's topic. */
export const topicOf = (channel: string): string => TOPIC_PREFIX + channel;

/** The topic an event goes out on: its channel's, or the control topic. */
export function topicOfEvent(e: BusEvent): string {
  const channel = channelOf(e);
  return channel === undefined ? CONTROL_TOPIC : topicOf(channel);
}

const strings = (l: unknown) => l === undefined || (Array.isArray(l) && l.every((u) => typeof u === 'string'));

/** Shape check for the fields the gateway relies on, and that the event came on its own topic. */
export function isEvent(e: unknown, topic: string): e is BusEvent {
  if (typeof e !== 'object' || e === null) return false;
  const v = e as Record<string, unknown>;
  const onChannelTopic = typeof v.channel === 'string' && topic === topicOf(v.channel);
  switch (v.kind) {
    case 'change': {
      const f = v.frame as Record<string, unknown> | null;
      return onChannelTopic && typeof v.seq === 'number' && typeof f === 'object' && f !== null && f.seq === v.seq && typeof f.type === 'string';
    }
    case 'typing':
      return onChannelTopic && typeof v.user === 'string' && typeof v.gateway === 'string';
    case 'presence':
      return onChannelTopic && typeof v.gateway === 'string' && strings(v.joined) && strings(v.left) && strings(v.users);
    case 'resync':
      return topic === CONTROL_TOPIC && typeof v.epoch === 'string';
    case 'alive':
      return topic === CONTROL_TOPIC && typeof v.gateway === 'string';
    case 'revoke':
      return topic === CONTROL_TOPIC && typeof v.user === 'string' && typeof v.notBefore === 'number';
    default:
      return false;
  }
}

// The HTTP API (docs/protocol.md): one entry per method, each with its input schema. The API
// only writes to PostgreSQL; stored rows reach sockets through the WAL.
import type { z } from 'zod';
import type { Changes } from '../chat/changes.js';
import type { Channels } from '../chat/channels.js';
import type { Messages } from '../chat/messages.js';
import { WalcastError } from '../errors.js';
import type { API_METHODS, ApiMethod } from '../protocol.js';
import * as s from './schemas.js';

export interface ApiDeps {
  channels: Channels;
  messages: Messages;
  changes: Changes;
  maxTextChars: number;
  /** Who holds a live subscription to a channel, on every gateway. */
  presence: (channel: string) => Promise<string[]>;
  onStored?: () => void;
}

export interface Route<S extends z.ZodType = z.ZodType> {
  method: (typeof API_METHODS)[ApiMethod];
  schema: S;
  handle(user: string, input: z.output<S>, deps: ApiDeps): Promise<Record<string, unknown>>;
}

const route = <M extends Route['method'], S extends z.ZodType>(r: Route<S> & { method: M }): Route & { method: M } =>
  r as unknown as Route & { method: M };

type Routes = { [M in ApiMethod]: Route & { method: (typeof API_METHODS)[M] } };

/** Keyed by the protocol's method names (API_METHODS): a missing method, or a verb that differs, does not compile. */
export const routes: Routes & Record<string, Route | undefined> = {
  'conversations.create': route({
    method: 'POST',
    schema: s.createChannel,
    handle: async (user, b, d) => ({ channel: await d.channels.create(user, b.name, b.is_private, b.members_can_invite) }),
  }),
  'conversations.join': route({
    method: 'POST',
    schema: s.join,
    handle: async (user, b, d) => ({ channel: await d.channels.join(b.channel, user) }),
  }),
  'conversations.invite': route({
    method: 'POST',
    schema: s.invite,
    handle: async (user, b, d) => ({ channel: await d.channels.invite(b.channel, user, b.users) }),
  }),
  'conversations.kick': route({
    method: 'POST',
    schema: s.kick,
    handle: async (user, b, d) => {
      await d.channels.kick(b.channel, user, b.user);
      return {};
    },
  }),
  'conversations.leave': route({
    method: 'POST',
    schema: s.leave,
    handle: async (user, b, d) => {
      await d.channels.leave(b.channel, user);
      return {};
    },
  }),
  'chat.postMessage': route({
    method: 'POST',
    schema: s.postMessage,
    handle: async (user, b, d) => {
      checkLength(b.text, d.maxTextChars);
      const { message, created } = await d.messages.post({ channel: b.channel, user, text: b.text, clientMsgId: b.client_msg_id ?? null, replyTo: b.reply_to ?? null });
      if (created) d.onStored?.();
      return { message };
    },
  }),
  'chat.update': route({
    method: 'POST',
    schema: s.updateMessage,
    handle: async (user, b, d) => {
      checkLength(b.text, d.maxTextChars);
      return { message: (await d.changes.update(b.channel, user, b.seq, b.text)).message };
    },
  }),
  'chat.delete': route({
    method: 'POST',
    schema: s.deleteMessage,
    handle: async (user, b, d) => ({ message: (await d.changes.delete(b.channel, user, b.seq)).message }),
  }),
  'reactions.add': route({
    method: 'POST',
    schema: s.reaction,
    handle: async (user, b, d) => ({ message: (await d.changes.react(b.channel, user, b.seq, b.name, true)).message }),
  }),
  'reactions.remove': route({
    method: 'POST',
    schema: s.reaction,
    handle: async (user, b, d) => ({ message: (await d.changes.react(b.channel, user, b.seq, b.name, false)).message }),
  }),
  'chat.getMessage': route({
    method: 'GET',
    schema: s.getMessage,
    handle: async (user, q, d) => ({ message: await d.messages.get(q.channel, user, q.seq) }),
  }),
  'conversations.history': route({
    method: 'GET',
    schema: s.history,
    handle: async (user, q, d) => ({ ...(await d.messages.history(q.channel, user, q.after_seq, q.limit, q.before_seq)) }),
  }),
  'conversations.presence': route({
    method: 'GET',
    schema: s.presence,
    handle: async (user, q, d) => {
      await d.channels.requireMember(q.channel, user);
      const users = (await d.presence(q.channel)).sort();
      return { users, count: users.length };
    },
  }),
  'conversations.replay': route({
    method: 'GET',
    schema: s.replay,
    handle: async (user, q, d) => ({ ...(await d.messages.replay(q.channel, user, q.after_seq, q.limit)) }),
  }),
};

/** Characters as a person counts them (code points), not UTF-16 units. */
function checkLength(text: string, max: number): void {
  let chars = 0;
  for (const _ of text) if (++chars > max) throw new WalcastError('msg_too_long', `text exceeds ${max} characters`);
}

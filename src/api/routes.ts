// The HTTP API (docs/protocol.md): one entry per method, each with its input schema. The API
// only writes to PostgreSQL; stored rows reach sockets through the WAL.
import type { z } from 'zod';
import type { Channels } from '../chat/channels.js';
import type { Messages } from '../chat/messages.js';
import { WalcastError } from '../errors.js';
import * as s from './schemas.js';

export interface ApiDeps {
  channels: Channels;
  messages: Messages;
  maxTextChars: number;
  onStored?: () => void;
}

export interface Route<S extends z.ZodType = z.ZodType> {
  method: 'GET' | 'POST';
  schema: S;
  handle(user: string, input: z.output<S>, deps: ApiDeps): Promise<Record<string, unknown>>;
}

const route = <S extends z.ZodType>(r: Route<S>): Route => r as unknown as Route;

export const routes: Record<string, Route> = {
  'conversations.create': route({
    method: 'POST',
    schema: s.createChannel,
    handle: async (user, b, d) => ({ channel: await d.channels.create(user, b.name, b.is_private) }),
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
  'chat.postMessage': route({
    method: 'POST',
    schema: s.postMessage,
    handle: async (user, b, d) => {
      // Characters as a person counts them (code points), not UTF-16 units.
      let chars = 0;
      for (const _ of b.text) if (++chars > d.maxTextChars) throw new WalcastError('msg_too_long', `text exceeds ${d.maxTextChars} characters`);
      const { message, created } = await d.messages.post({ channel: b.channel, user, text: b.text, clientMsgId: b.client_msg_id ?? null });
      if (created) d.onStored?.();
      return { message };
    },
  }),
  'chat.getMessage': route({
    method: 'GET',
    schema: s.getMessage,
    handle: async (user, q, d) => ({ message: await d.messages.get(q.channel, user, q.seq) }),
  }),
  'conversations.history': route({
    method: 'GET',
    schema: s.history,
    handle: async (user, q, d) => ({ ...(await d.messages.history(q.channel, user, q.after_seq, q.limit)) }),
  }),
};

// A Message as walcast would store it, for tests that put events on the bus themselves.
import { randomUUID } from 'node:crypto';
import type { Message } from '../../src/protocol.js';

export function testMessage(channel: string, seq: number, over: Partial<Message> = {}): Message {
  return {
    id: randomUUID(),
    channel,
    seq,
    user: 'u1',
    text: `hello ${seq}`,
    client_msg_id: null,
    created_at: new Date(0).toISOString(),
    reply_to: null,
    edited_at: null,
    deleted_at: null,
    reactions: {},
    changed_seq: seq,
    ...over,
  };
}

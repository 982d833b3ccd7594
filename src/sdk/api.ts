// The HTTP API from the SDK: every method of docs/protocol.md, typed, over `fetch` (browsers,
// Node 18+). Failures throw the protocol's WalcastError with the server's code and retry hint.
import {
  API_METHODS,
  PATHS,
  WalcastError,
  isErrorCode,
  retryHintOfResponse,
  type ApiMethod,
  type ChangeFrame,
  type Channel,
  type Message,
} from '../protocol.js';

export interface ApiOptions {
  /** The server's base URL, e.g. http://127.0.0.1:8080 (in a page: location.origin). */
  baseUrl: string;
  /** An access token, or a function returning a fresh one (called per request). */
  token: string | (() => string | Promise<string>);
  fetch?: typeof fetch;
}

export interface History {
  messages: Message[];
  has_more: boolean;
}

export interface Replay {
  changes: ChangeFrame[];
  has_more: boolean;
}

export class WalcastApi {
  private readonly fetch: typeof fetch;

  constructor(private readonly o: ApiOptions) {
    const f = o.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!f) throw new Error('no fetch implementation: pass { fetch }');
    this.fetch = f.bind(globalThis);
  }

  /** Calls a method; resolves to the success body, or throws WalcastError. */
  async call<T = Record<string, unknown>>(method: ApiMethod, args: Record<string, unknown> = {}): Promise<T> {
    const token = typeof this.o.token === 'function' ? await this.o.token() : this.o.token;
    const base = this.o.baseUrl.replace(/\/$/, '') + PATHS.api + method;
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    let res: Response;
    if (API_METHODS[method] === 'GET') {
      const qs = new URLSearchParams();
      for (const [k, v] of Object.entries(args)) if (v !== undefined && v !== null) qs.set(k, String(v));
      res = await this.fetch(`${base}?${qs}`, { headers });
    } else {
      headers['content-type'] = 'application/json';
      res = await this.fetch(base, { method: 'POST', headers, body: JSON.stringify(args) });
    }
    const body = (await res.json().catch(() => null)) as ({ ok?: boolean; error?: unknown; message?: string } & T) | null;
    if (res.ok && body?.ok) return body;
    const code = isErrorCode(body?.error) ? body.error : res.status >= 500 ? 'unavailable' : 'invalid_arguments';
    const hint = retryHintOfResponse(body, res.headers.get('retry-after'));
    throw new WalcastError(code, body?.message ?? `${method}: HTTP ${res.status}`, hint === undefined ? {} : { retryAfterMs: hint });
  }

  async createChannel(name: string, opts: { isPrivate?: boolean; membersCanInvite?: boolean } = {}): Promise<Channel> {
    return (await this.call<{ channel: Channel }>('conversations.create', { name, is_private: opts.isPrivate, members_can_invite: opts.membersCanInvite })).channel;
  }

  async join(channel: string): Promise<Channel> {
    return (await this.call<{ channel: Channel }>('conversations.join', { channel })).channel;
  }

  async invite(channel: string, users: string[]): Promise<Channel> {
    return (await this.call<{ channel: Channel }>('conversations.invite', { channel, users })).channel;
  }

  async kick(channel: string, user: string): Promise<void> {
    await this.call('conversations.kick', { channel, user });
  }

  async leave(channel: string): Promise<void> {
    await this.call('conversations.leave', { channel });
  }

  /** Posts a message. Give a `clientMsgId` to make retries safe: a retry returns the first message. */
  async postMessage(channel: string, text: string, opts: { clientMsgId?: string; replyTo?: number } = {}): Promise<Message> {
    return (await this.call<{ message: Message }>('chat.postMessage', { channel, text, client_msg_id: opts.clientMsgId, reply_to: opts.replyTo })).message;
  }

  async update(channel: string, seq: number, text: string): Promise<Message> {
    return (await this.call<{ message: Message }>('chat.update', { channel, seq, text })).message;
  }

  async delete(channel: string, seq: number): Promise<Message> {
    return (await this.call<{ message: Message }>('chat.delete', { channel, seq })).message;
  }

  async react(channel: string, seq: number, name: string): Promise<Message> {
    return (await this.call<{ message: Message }>('reactions.add', { channel, seq, name })).message;
  }

  async unreact(channel: string, seq: number, name: string): Promise<Message> {
    return (await this.call<{ message: Message }>('reactions.remove', { channel, seq, name })).message;
  }

  async getMessage(channel: string, seq: number): Promise<Message> {
    return (await this.call<{ message: Message }>('chat.getMessage', { channel, seq })).message;
  }

  /** Messages in their current state: after `afterSeq` (oldest first), or the latest ones before `beforeSeq`. */
  history(channel: string, opts: { afterSeq?: number; beforeSeq?: number; limit?: number } = {}): Promise<History> {
    return this.call<History>('conversations.history', { channel, after_seq: opts.afterSeq, before_seq: opts.beforeSeq, limit: opts.limit });
  }

  /** The change log (every frame that carries a seq) after `afterSeq`. */
  replay(channel: string, opts: { afterSeq?: number; limit?: number } = {}): Promise<Replay> {
    return this.call<Replay>('conversations.replay', { channel, after_seq: opts.afterSeq, limit: opts.limit });
  }
}

export function createApi(options: ApiOptions): WalcastApi {
  return new WalcastApi(options);
}

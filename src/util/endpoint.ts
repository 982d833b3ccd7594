// One side of a message channel to another thread or process: a worker_threads MessagePort, or
// the IPC channel of a forked child. Messages are structured-cloned and arrive in order; every
// user tags its messages, since one channel carries several kinds (bus, metrics, control).
import type { MessagePort } from 'node:worker_threads';

/** One side of a message channel. */
export interface Endpoint {
  send(msg: unknown): void;
  onMessage(handler: (msg: unknown) => void): void;
  /** The channel is gone for good (the other side exited or closed it). */
  onClose(handler: () => void): void;
}

/** Something that posts and emits messages: a worker_threads MessagePort or Worker. */
interface Port {
  postMessage(msg: unknown): void;
  on(event: string, h: (...args: never[]) => void): unknown;
}

/** A worker_threads MessagePort (a thread's parentPort) or the Worker object on the parent's side. */
export function portEndpoint(port: Port | MessagePort): Endpoint {
  const p = port as Port;
  return {
    send: (msg) => p.postMessage(msg),
    onMessage: (h) => void p.on('message', h),
    onClose: (h) => {
      // A MessagePort emits 'close'; a Worker emits 'exit'.
      p.on('close', h);
      p.on('exit', h);
    },
  };
}

interface IpcChannel {
  send?(msg: unknown, handle: undefined, options: object, callback: (error: Error | null) => void): boolean;
  connected?: boolean;
  on(event: 'message', h: (msg: unknown) => void): unknown;
  on(event: 'disconnect', h: () => void): unknown;
}

/** The IPC channel of a forked child (a ChildProcess in the parent, `process` in the child). */
export function ipcEndpoint(proc: IpcChannel): Endpoint {
  return {
    // The other side may die between the `connected` check and the write (a SIGKILLed worker):
    // the write then fails (EPIPE, ERR_IPC_CHANNEL_CLOSED). Without a callback that failure is
    // an 'error' event, which nothing handles, and it took the whole supervisor down; the
    // 'disconnect' handler reports the loss.
    send: (msg) => {
      if (proc.connected) proc.send?.(msg, undefined, {}, () => {});
    },
    onMessage: (h) => void proc.on('message', h),
    onClose: (h) => void proc.on('disconnect', h),
  };
}

/** Whether `m` is a message with this tag. */
export const tagged = <T extends { tag: string }>(m: unknown, tag: T['tag']): m is T =>
  typeof m === 'object' && m !== null && (m as { tag?: unknown }).tag === tag;

/**
 * Request/response over an endpoint: `ask` sends `{tag, t: 'req', id, ...}` and resolves with the
 * `{tag, t: 'res', id, ...}` answer; `answer` serves such requests. Rejects when the channel closes or
 * no answer comes within `timeoutMs`.
 */
export function asker(endpoint: Endpoint, tag: string, timeoutMs = 5000) {
  let next = 1;
  let gone = false;
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  endpoint.onMessage((m) => {
    if (!tagged<{ tag: string; t: string; id: number; error?: string; value?: unknown }>(m, tag) || m.t !== 'res') return;
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    clearTimeout(w.timer);
    if (m.error !== undefined) w.reject(new Error(m.error));
    else w.resolve(m.value);
  });
  endpoint.onClose(() => {
    gone = true;
    for (const w of waiting.values()) {
      clearTimeout(w.timer);
      w.reject(new Error('the other side is gone'));
    }
    waiting.clear();
  });
  return <T>(what: string, ms = timeoutMs): Promise<T> => {
    if (gone) return Promise.reject(new Error('the other side is gone'));
    const id = next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`no answer to ${what} within ${ms} ms`));
      }, ms);
      timer.unref();
      waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      endpoint.send({ tag, t: 'req', id, what });
    });
  };
}

/** Serves `asker` requests: `handlers[what]()` answers each. */
export function answer(endpoint: Endpoint, tag: string, handlers: Record<string, () => unknown>): void {
  endpoint.onMessage((m) => {
    if (!tagged<{ tag: string; t: string; id: number; what: string }>(m, tag) || m.t !== 'req') return;
    const h = handlers[m.what];
    Promise.resolve()
      .then(() => (h ? h() : Promise.reject(new Error(`unknown request ${m.what}`))))
      .then(
        (value) => endpoint.send({ tag, t: 'res', id: m.id, value }),
        (e: unknown) => endpoint.send({ tag, t: 'res', id: m.id, error: (e as Error)?.message ?? String(e) }),
      );
  });
}

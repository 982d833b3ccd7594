// The last warnings and errors a process logged, for the ops page (/ops/state.json, operators
// only): a logger that writes through to the real one and keeps a bounded copy. Nothing is
// kept below `warn`, fields are cut short, and the buffer holds at most `max` entries, so a
// flood of errors costs a fixed amount of memory.
import type { Logger } from '../log.js';

export interface LoggedProblem {
  /** ms since the epoch. */
  t: number;
  level: 'warn' | 'error';
  msg: string;
  /** The entry's fields and the logger's bindings (role, mod), each value shortened to text. */
  fields: Record<string, string>;
}

const FIELD_CHARS = 200;
const MAX_FIELDS = 12;

function shorten(v: unknown): string {
  let s: string;
  // An error, or one as another thread sent it (plainFields: its message and code).
  const e = v instanceof Error || (typeof v === 'object' && v !== null && typeof (v as { message?: unknown }).message === 'string' && Object.keys(v).every((k) => k === 'message' || k === 'code')) ? (v as { message: string; code?: unknown }) : null;
  if (e) s = e.code ? `${e.message} (${String(e.code)})` : e.message;
  else if (typeof v === 'string') s = v;
  else {
    try {
      s = JSON.stringify(v) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > FIELD_CHARS ? s.slice(0, FIELD_CHARS) + '…' : s;
}

export class RecentProblems {
  private readonly entries: LoggedProblem[] = [];
  /** Warnings and errors logged since start, including those no longer held. */
  total = 0;

  constructor(private readonly max = 50) {}

  /** Oldest first. */
  list(): LoggedProblem[] {
    return [...this.entries];
  }

  /** A logger that logs through `inner` and remembers its warnings and errors (its children too). */
  wrap(inner: Logger, bindings: Record<string, unknown> = {}): Logger {
    const keep = (level: 'warn' | 'error', msg: string, f?: Record<string, unknown>) => {
      this.total++;
      const fields: Record<string, string> = {};
      for (const [k, v] of Object.entries({ ...bindings, ...f }).slice(0, MAX_FIELDS)) if (v !== undefined) fields[k] = shorten(v);
      this.entries.push({ t: Date.now(), level, msg: shorten(msg), fields });
      if (this.entries.length > this.max) this.entries.shift();
    };
    return {
      debug: (m, f) => inner.debug(m, f),
      info: (m, f) => inner.info(m, f),
      warn: (m, f) => {
        keep('warn', m, f);
        inner.warn(m, f);
      },
      error: (m, f) => {
        keep('error', m, f);
        inner.error(m, f);
      },
      child: (b) => this.wrap(inner.child(b), { ...bindings, ...b }),
    };
  }
}

// A small structured logger: one JSON line per event on stderr, so stdout stays for CLI output.
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

export function createLogger(level: Level | 'silent' = 'info', bindings: Record<string, unknown> = {}): Logger {
  const min = ORDER[level];
  const write = (lvl: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < min) return;
    process.stderr.write(JSON.stringify(plainFields({ t: new Date().toISOString(), level: lvl, msg, ...bindings, ...fields })) + '\n');
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (b) => createLogger(level, { ...bindings, ...b }),
  };
}

/** Fields as a log line holds them: an error as its message and code. */
export function plainFields(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = v instanceof Error ? { message: v.message, code: (v as { code?: unknown }).code } : v;
  return out;
}

/**
 * A worker thread's logger: it writes debug and info itself, and hands warnings and errors to
 * `forward`, for the main thread to log (which also keeps them for the ops page).
 */
export function forwardingLogger(
  local: Logger,
  forward: (level: 'warn' | 'error', msg: string, fields: Record<string, unknown>) => void,
  bindings: Record<string, unknown> = {},
): Logger {
  const send = (level: 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => {
    try {
      forward(level, msg, plainFields({ ...bindings, ...fields }));
    } catch {
      // Not cloneable (or the port is gone): at least the line is written.
      local[level](msg, fields);
    }
  };
  return {
    debug: (m, f) => local.debug(m, f),
    info: (m, f) => local.info(m, f),
    warn: (m, f) => send('warn', m, f),
    error: (m, f) => send('error', m, f),
    child: (b) => forwardingLogger(local.child(b), forward, { ...bindings, ...b }),
  };
}

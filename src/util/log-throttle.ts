// At most one log line per key per interval: a client repeating the same bad request, or a bug
// hit by every request, must not flood the log. The line that does get through says how many
// were suppressed since the last one.
export class LogThrottle {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs: number,
    private readonly maxKeys = 1000,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Calls `write` unless `key` was written within the interval; returns whether it did. */
  run(key: string, write: (suppressed: number) => void): boolean {
    const t = this.now();
    const entry = this.last.get(key);
    if (entry && t - entry.at < this.intervalMs) {
      entry.suppressed++;
      return false;
    }
    if (!entry && this.last.size >= this.maxKeys) this.last.clear();
    write(entry?.suppressed ?? 0);
    this.last.set(key, { at: t, suppressed: 0 });
    return true;
  }
}

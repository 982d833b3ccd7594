// Plain-text results, shared by the tests and the benchmarks: percentiles of raw samples, an
// aligned markdown table, and what machine a measurement ran on.
import os from 'node:os';

/** [p50, p95, p99, max] of samples in ms, two decimals ('-' when there are none). */
export function percentiles(values: number[]): string[] {
  if (values.length === 0) return ['-', '-', '-', '-'];
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return [at(0.5), at(0.95), at(0.99), s[s.length - 1]!].map((v) => v.toFixed(2));
}

/** A markdown table, columns padded; the first column left-aligned, the others right-aligned. */
export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w, i) => (i === 0 ? '-' : '') + '-'.repeat(w + 1) + (i === 0 ? '' : ':')).join('|') + '|', ...rows.map((r) => line(r.map(String)))].join('\n');
}

/** One line: cores, CPU model, memory, kernel, Node, time. */
export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  return `machine: ${os.cpus().length} x ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.type()} ${os.release()}, Node ${process.version}, ${new Date().toISOString()}`;
}

// A log-bucketed latency histogram (buckets 2% wide from 0.01 ms): mergeable across worker
// processes (plain arrays over IPC), percentiles within 1%, constant memory at any rate.
const MIN = 0.01;
const F = Math.log(1.02);

export interface HistData {
  counts: Record<number, number>;
  n: number;
  min: number;
  max: number;
  sum: number;
}

export class Hist {
  counts: Record<number, number> = {};
  n = 0;
  min = Infinity;
  max = 0;
  sum = 0;

  add(ms: number): void {
    const v = Math.max(ms, MIN);
    const i = Math.floor(Math.log(v / MIN) / F);
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.n++;
    this.sum += ms;
    if (ms < this.min) this.min = ms;
    if (ms > this.max) this.max = ms;
  }

  merge(d: HistData): this {
    for (const [k, c] of Object.entries(d.counts)) this.counts[Number(k)] = (this.counts[Number(k)] ?? 0) + c;
    this.n += d.n;
    this.sum += d.sum;
    if (d.n) {
      this.min = Math.min(this.min, d.min);
      this.max = Math.max(this.max, d.max);
    }
    return this;
  }

  data(): HistData {
    return { counts: this.counts, n: this.n, min: this.n ? this.min : 0, max: this.max, sum: this.sum };
  }

  /** q in [0, 1]; the geometric middle of the bucket holding it (exact max for q = 1). */
  q(q: number): number {
    if (this.n === 0) return NaN;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (const k of Object.keys(this.counts).map(Number).sort((a, b) => a - b)) {
      seen += this.counts[k]!;
      if (seen >= rank) return Math.min(this.max, Math.max(this.min, MIN * Math.exp((k + 0.5) * F)));
    }
    return this.max;
  }

  summary(): { n: number; p50: number; p90: number; p95: number; p99: number; p999: number; max: number; mean: number } {
    return { n: this.n, p50: this.q(0.5), p90: this.q(0.9), p95: this.q(0.95), p99: this.q(0.99), p999: this.q(0.999), max: this.n ? this.max : NaN, mean: this.n ? this.sum / this.n : NaN };
  }

  static from(d: HistData): Hist {
    return new Hist().merge(d);
  }
}

// A bounded set whose members are forgotten after a while: the gateway's negative cache of
// unknown channel ids. When full it is emptied (an attacker can only make it forget sooner).
export class TtlSet {
  private readonly until = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly max = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  add(key: string): void {
    if (this.until.size >= this.max && !this.until.has(key)) this.until.clear();
    this.until.set(key, this.now() + this.ttlMs);
  }

  has(key: string): boolean {
    const t = this.until.get(key);
    if (t === undefined) return false;
    if (t > this.now()) return true;
    this.until.delete(key);
    return false;
  }

  delete(key: string): void {
    this.until.delete(key);
  }

  get size(): number {
    return this.until.size;
  }
}

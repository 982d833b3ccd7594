// A map that holds its first entry in two fields and becomes a Map only at the second. A
// gateway keeps one per socket (its subscriptions), nearly always with one entry: an empty
// Map with its hash table costs about 250 bytes, a socket's whole budget is about 3 KB.
export class SmallMap<K, V> {
  private k: K | undefined = undefined;
  private v: V | undefined = undefined;
  private one = false;
  private many: Map<K, V> | null = null;

  get size(): number {
    return this.many ? this.many.size : this.one ? 1 : 0;
  }

  get(key: K): V | undefined {
    if (this.many) return this.many.get(key);
    return this.one && this.k === key ? this.v : undefined;
  }

  set(key: K, value: V): this {
    if (this.many) this.many.set(key, value);
    else if (!this.one || this.k === key) {
      this.k = key;
      this.v = value;
      this.one = true;
    } else {
      this.many = new Map([[this.k as K, this.v as V], [key, value]]);
      this.k = this.v = undefined;
      this.one = false;
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.many) return this.many.delete(key);
    if (!this.one || this.k !== key) return false;
    this.k = this.v = undefined;
    this.one = false;
    return true;
  }

  clear(): void {
    this.many = null;
    this.k = this.v = undefined;
    this.one = false;
  }

  /** A snapshot: safe to iterate while the map changes. */
  values(): V[] {
    if (this.many) return [...this.many.values()];
    return this.one ? [this.v as V] : [];
  }
}

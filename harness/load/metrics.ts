// Reading a walcast process's /metrics (Prometheus text) from outside, for load drivers that
// report what a server did (queries, frames, shed events) next to what the clients saw.
import { PATHS } from '../../src/protocol.js';
import { HARNESS_ADMIN_TOKEN } from '../topology.js';

export type Scrape = Record<string, number>;

/** Every sample of `base`/metrics, keyed by name with its labels. */
export async function scrape(base: string, adminToken = HARNESS_ADMIN_TOKEN): Promise<Scrape> {
  const res = await fetch(base + PATHS.metrics, { headers: { authorization: `Bearer ${adminToken}` } });
  const text = await res.text();
  // A refused scrape must not read as all-zero counters.
  if (!res.ok) throw new Error(`GET ${base}${PATHS.metrics}: ${res.status} ${text.slice(0, 200)}`);
  const out: Scrape = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    const key = line.slice(0, i);
    out[key] = (out[key] ?? 0) + Number(line.slice(i + 1));
  }
  return out;
}

/** A metric summed over all its label sets. */
export const metric = (m: Scrape, name: string): number =>
  Object.entries(m)
    .filter(([k]) => k === name || k.startsWith(name + '{'))
    .reduce((a, [, v]) => a + v, 0);

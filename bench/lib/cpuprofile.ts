// Summary of a V8 .cpuprofile (node --cpu-prof): where a process's time went, by area (walcast's
// own modules by directory, the pg driver, uWS, jose, node's net/stream internals, GC, idle) as
// self time and as time with the area anywhere on the stack, and the top functions by self time.
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled wall time, ms. */
  totalMs: number;
  idleMs: number;
  /** Self time by area, ms, largest first. */
  self: [string, number][];
  /** Time with the area anywhere on the stack (areas overlap), ms, largest first. */
  inclusive: [string, number][];
  /** Functions by self time: [name (file:line), ms]. */
  top: [string, number][];
  /** Every sample in one walcast bucket (BUCKETS, first match from the leaf's stack), ms. */
  budget: [string, number][];
}

/**
 * walcast's time budget: each sample goes to the first bucket whose test matches its stack
 * (frames from the leaf up). The order matters: a socket write under the pg driver is a
 * database write, not "pg parsing".
 */
const BUCKETS: [string, (stack: CallFrame[]) => boolean][] = [
  ['idle', (s) => s[0]!.functionName === '(idle)'],
  ['GC', (s) => s[0]!.functionName === '(garbage collector)'],
  ['relay: acknowledgements to PostgreSQL (socket writes)', (s) => s.some((f) => f.functionName === 'sendCopyFromChunk')],
  ['relay: WAL decoding and publishing', (s) => s.some((f) => /pg-logical-replication|\/src\/cdc\/|\/src\/bus\//.test(f.url))],
  ['pg: query socket writes', (s) => /^(writev|writeBuffer|writeUtf8String|writeLatin1String)$/.test(s[0]!.functionName) && s.some((f) => /node_modules\/pg\//.test(f.url))],
  ['pg: protocol, result parsing', (s) => s.some((f) => /node_modules\/(pg|pg-protocol|pg-types|postgres-date|pg-pool)\//.test(f.url))],
  ['HTTP: response writes (uWS)', (s) => s.some((f) => /\/src\/http\/respond/.test(f.url))],
  ['tokens', (s) => s.some((f) => /\/src\/auth\/|node_modules\/jose\//.test(f.url))],
  ['HTTP: body reading and JSON parsing', (s) => s.some((f) => /\/src\/http\/body/.test(f.url))],
  ['writer: queues and batches', (s) => s.some((f) => /\/src\/chat\//.test(f.url))],
  ['API: routing, validation', (s) => s.some((f) => /\/src\/api\/|node_modules\/zod\//.test(f.url))],
  ['metrics (prom-client)', (s) => s.some((f) => /prom-client/.test(f.url))],
  ['startup: module loading', (s) => s.some((f) => /node:internal\/modules|node_modules\/tsx\//.test(f.url))],
  ['gateway', (s) => s.some((f) => /\/src\/gateway\//.test(f.url))],
  ['other (event loop, timers, native)', () => true],
];

/** The area a frame belongs to. */
export function areaOf(f: CallFrame): string {
  const u = f.url;
  if (!u) {
    if (f.functionName === '(idle)') return 'idle';
    if (f.functionName === '(garbage collector)') return 'GC';
    if (f.functionName === '(program)') return '(program: native, not attributed)';
    if (f.functionName === '(root)') return '(root)';
    return `builtin ${f.functionName || '(anonymous)'}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
  if (nm) {
    const m = nm[1]!;
    if (m === 'pg' || m === 'pg-protocol' || m === 'pg-pool' || m === 'pg-types') return 'pg driver';
    if (m === 'pg-logical-replication') return 'pg-logical-replication (relay)';
    if (/uWebSockets|uws/i.test(m)) return 'uWS (JS side)';
    return m;
  }
  const src = /\/src\/([^/]+)\/([^/?]+)/.exec(u);
  if (src) return `walcast src/${src[1]}${src[1] === 'chat' || src[1] === 'http' || src[1] === 'api' ? `/${src[2]!.replace(/\.ts$/, '')}` : ''}`;
  const top = /\/src\/([^/?]+)\.ts/.exec(u);
  if (top) return `walcast src/${top[1]}`;
  if (u.startsWith('node:')) {
    const m = u.slice(5).replace(/^internal\//, '');
    if (/^(net|stream|streams|stream_base_commons|.*socket|dns|tcp)/.test(m)) return 'node net/streams';
    if (/^(timers|process\/task_queues|async_hooks|process)/.test(m)) return 'node event loop (timers, microtasks)';
    if (/^(modules|vm|url|fs|source_map)/.test(m)) return 'node module loading';
    return `node ${m.split('/')[0]}`;
  }
  return 'other';
}

export function summarizeProfile(file: string): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfArea = new Map<string, number>();
  const incArea = new Map<string, number>();
  const fn = new Map<string, number>();
  const budget = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = (p.timeDeltas[i + 1] ?? 0) / 1000;
    if (dt <= 0) continue;
    total += dt;
    const leaf = byId.get(p.samples[i]!)!;
    const area = areaOf(leaf.callFrame);
    add(selfArea, area, dt);
    const f = leaf.callFrame;
    // tsx compiles src/ to one line per file: a line number there says nothing.
    const where = f.url ? f.url.replace(/^.*\/(node_modules|src)\//, '$1/') + (f.lineNumber > 0 ? `:${f.lineNumber + 1}` : '') : 'native';
    add(fn, `${f.functionName || '(anonymous)'} (${where})`, dt);
    const seen = new Set<string>();
    const stack: CallFrame[] = [];
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      stack.push(frame);
      const a = areaOf(frame);
      if (!seen.has(a)) (seen.add(a), add(incArea, a, dt));
    }
    add(budget, BUCKETS.find(([, test]) => test(stack))![0], dt);
  }
  const sorted = (m: Map<string, number>, n = Infinity) =>
    [...m.entries()]
      .filter(([k]) => k !== '(root)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => [k, Math.round(v)] as [string, number]);
  return { file, totalMs: Math.round(total), idleMs: Math.round(selfArea.get('idle') ?? 0), self: sorted(selfArea, 25), inclusive: sorted(incArea, 25), top: sorted(fn, 30), budget: sorted(budget) };
}

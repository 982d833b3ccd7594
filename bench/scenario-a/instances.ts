// What a gateway "instance" is in Scenario A: the one place that knows. An instance is one
// address clients are sent to and enough processes behind it for its sockets (open files are
// capped at 20,000 per process here, so ~19k sockets each). Two ways to build one:
//  - `workers`: one `walcast gateway` with WALCAST_GATEWAY_WORKERS=N (N worker processes on one
//    port, SO_REUSEPORT, supervised): clients all connect to its one port;
//  - `processes`: N separate `walcast gateway` processes on N ports, which the driver treats as
//    one instance by spreading that instance's clients evenly over its ports.
// `auto` picks `workers` when this walcast declares WALCAST_GATEWAY_WORKERS (src/config.ts).
import { withDescendants } from '../../harness/proc-stats.js';
import { startRole, type RoleProc } from '../../harness/roles.js';
import { settings } from '../../src/config.js';

export type InstanceMode = 'workers' | 'processes';

export interface GatewayInstance {
  name: string;
  mode: InstanceMode;
  /** Where this instance's clients connect (one port in `workers` mode, one per process otherwise). */
  ports: number[];
  /** Every OS process of the instance now, labelled (for CPU and memory). */
  processes(): { name: string; pid: number }[];
  close(): Promise<void>;
}

export const WORKERS_SETTING = 'WALCAST_GATEWAY_WORKERS';

export function resolveMode(mode: string): InstanceMode {
  if (mode === 'workers' || mode === 'processes') return mode;
  if (mode !== 'auto') throw new Error(`--gateway-mode: auto, workers or processes, not ${mode}`);
  return settings().some((s) => s.setting.env === WORKERS_SETTING) ? 'workers' : 'processes';
}

export async function startGatewayInstances(env: Record<string, string>, instances: number, perInstance: number, mode: InstanceMode): Promise<GatewayInstance[]> {
  return Promise.all(
    Array.from({ length: instances }, async (_, i): Promise<GatewayInstance> => {
      const name = `gateway-${i + 1}`;
      if (mode === 'workers') {
        const proc = await startRole('gateway', { ...env, [WORKERS_SETTING]: String(perInstance) }, { index: i + 1 });
        return {
          name,
          mode,
          ports: [proc.port],
          processes: () => {
            const [root, ...workers] = proc.pids().flatMap((p) => withDescendants(p));
            return root === undefined ? [] : [{ name: `${name} supervisor`, pid: root }, ...workers.map((pid, k) => ({ name: `${name} worker ${k + 1}`, pid }))];
          },
          close: async () => void (await proc.kill('SIGTERM')),
        };
      }
      const procs: RoleProc[] = await Promise.all(Array.from({ length: perInstance }, (_, k) => startRole('gateway', env, { index: i * perInstance + k + 1 })));
      return {
        name,
        mode,
        ports: procs.map((p) => p.port),
        processes: () => procs.flatMap((p, k) => p.pids().map((pid) => ({ name: `${name} process ${k + 1}`, pid }))),
        close: async () => void (await Promise.all(procs.map((p) => p.kill('SIGTERM')))),
      };
    }),
  );
}

/** The port the n-th client of an instance connects to (its share spread evenly over the ports). */
export const portFor = (inst: GatewayInstance, n: number): number => inst.ports[n % inst.ports.length]!;

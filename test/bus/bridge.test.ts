// The bus contract through the bridge (src/bus/bridge.ts): each bus is a RemoteBus whose calls
// cross a worker_threads MessageChannel to its own MemoryBus on one broker, as the relay thread
// and gateway worker processes of `walcast start` reach the owner's bus.
import t from 'tap';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { RemoteBus, serveBus } from '../../src/bus/bridge.js';
import { portEndpoint } from '../../src/util/endpoint.js';
import { MemoryBroker, MemoryBus } from '../../src/bus/memory.js';
import { message } from './contract.js';
import { busContract, waitFor } from './contract.js';

const broker = new MemoryBroker();
const ports: MessagePort[] = [];
t.teardown(() => ports.forEach((p) => p.close()));

function bridged(): RemoteBus {
  const { port1, port2 } = new MessageChannel();
  ports.push(port1, port2);
  serveBus(portEndpoint(port1), () => new MemoryBus(broker));
  return new RemoteBus(portEndpoint(port2));
}

await busContract(t, { make: () => bridged() });

t.test('when the owner side goes away: down, pending and later calls reject, nothing hangs', async (t) => {
  const { port1, port2 } = new MessageChannel();
  const owner = new MemoryBus(broker);
  let served: MemoryBus | null = null;
  serveBus(portEndpoint(port1), () => (served = new MemoryBus(broker)));
  const remote = new RemoteBus(portEndpoint(port2));
  const states: boolean[] = [];
  remote.onState((up) => states.push(up));
  await waitFor('up', () => remote.isUp());
  await remote.subscribe('CAAAAAAAAAAA9');
  const seen: number[] = [];
  remote.onEvent((e) => e.kind === 'change' && seen.push(e.seq));
  await owner.publish([message('CAAAAAAAAAAA9', 1)]);
  await waitFor('the event crossed', () => seen.length === 1);
  port1.close();
  await waitFor('down reported', () => states.at(-1) === false);
  t.same(states, [true, false]);
  t.notOk(remote.isUp());
  await t.rejects(remote.publish([message('CAAAAAAAAAAA9', 2)]), /owner is gone/);
  await t.rejects(remote.subscribe('CAAAAAAAAAAA8'), /owner is gone/);
  await waitFor('the owner side closed its bus', () => served !== null && !served.isUp());
  await owner.close();
  await remote.close();
});

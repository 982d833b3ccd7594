// The bus contract against the in-process bus: buses on one broker, as roles in one process.
import t from 'tap';
import { MemoryBroker, MemoryBus } from '../../src/bus/memory.js';
import { busContract } from './contract.js';

const broker = new MemoryBroker();
await busContract(t, { make: () => new MemoryBus(broker) });

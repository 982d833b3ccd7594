// Every benchmark scenario, one file each; `npm run bench -- --help` lists them in this order.
// The suite ones, in order, are the standard `npm run bench`.
import type { AnyScenario } from '../lib/scenario.js';
import { changes } from './changes.js';
import { ceiling } from './ceiling.js';
import { fairness } from './fairness.js';
import { fanout } from './fanout.js';
import { faults } from './faults.js';
import { hotIsolation } from './hot-isolation.js';
import { ingest } from './ingest.js';
import { latency } from './latency.js';
import { presence } from './presence.js';
import { race } from './race.js';
import { scale } from './scale.js';
import { scenarioA } from './scenario-a.js';
import { singleNode } from './single-node.js';
import { storm } from './storm.js';

export const SCENARIOS: readonly AnyScenario[] = [latency, race, faults, ingest, fanout, storm, fairness, singleNode, scale, hotIsolation, changes, presence, ceiling, scenarioA];

export const SUITE = SCENARIOS.filter((s) => s.suite);

export const scenarioNamed = (name: string): AnyScenario | undefined => SCENARIOS.find((s) => s.name === name);

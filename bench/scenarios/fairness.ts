// A hot channel against a quiet one on the same gateway (harness/load/fairness.ts): the quiet
// channel's POST → frame latency with no flood, and during the flood with the fan-out budget off,
// at its default and smaller. test/fairness.test.ts runs it small.
import { formatFairness, runFairness, type FairnessRun } from '../../harness/load/fairness.js';
import { machine } from '../../harness/load/format.js';
import { scenario } from '../lib/scenario.js';

export const fairness = scenario({
  name: 'fairness',
  summary: "hot channel fairness: a quiet channel's latency while a hot one floods the gateway, fan-out budget off and on",
  suite: false,
  options: {
    hot: { type: 'number', default: 2000, quick: 200, description: 'subscribers of the hot channel' },
    seconds: { type: 'number', default: 8, quick: 2, description: 'seconds per run' },
    posters: { type: 'number', default: 16, quick: 4, description: 'concurrent posters flooding the hot channel' },
  },
  async run(o, ctx): Promise<FairnessRun[]> {
    const runs: FairnessRun[] = [];
    for (const [budget, flood, label] of [
      ['20000', false, 'no flood'],
      ['0', true, 'flood, WALCAST_FANOUT_BUDGET=0 (off)'],
      ['20000', true, 'flood, budget 20000 (default)'],
      ['5000', true, 'flood, budget 5000'],
    ] as const) {
      ctx.log(`fairness: ${label}`);
      runs.push(await runFairness({ ...o, budget, flood, label }));
    }
    return runs;
  },
  print: (runs, o) => machine() + '\n\n' + formatFairness(runs, o.hot, o.seconds),
});

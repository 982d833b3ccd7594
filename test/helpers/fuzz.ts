// Arbitraries for the fuzzers (fast-check 4): nasty strings (NUL, lone surrogates, separators,
// BOM, bidi overrides, quotes), JSON values made of them, mutated JSON text, invalid UTF-8,
// deep nesting, huge numbers, raw bytes; and a runner that runs several seeded properties side
// by side and reports each failure with the seed and path that replay it.
import fc from 'fast-check';

export const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
export const nastyChar = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: loneSurrogate },
  { weight: 2, arbitrary: fc.constantFrom('\u0000', '\u2028', '\ufeff', '\u202e', '\uffff', '"', '\\', '%', '&', '=', '?', '#', '/', ' ') },
);
export const nasty = fc.string({ unit: nastyChar, maxLength: 40 });
export const anyJson = fc.jsonValue({ maxDepth: 3, stringUnit: nastyChar });

export const hugeNumber = fc.oneof(
  fc.constantFrom('1e999', '-1e999', '-0', '1e-400', '9007199254740993', '18446744073709551616', '0.0000000000000000001', '1E+308', '-1', '1.5'),
  fc.bigInt({ min: -(2n ** 512n), max: 2n ** 512n }).map(String),
);

/** JSON text nested `d` deep (mostly shallow, sometimes very deep). */
export const deepNesting = fc
  .oneof({ weight: 4, arbitrary: fc.integer({ min: 1, max: 200 }) }, { weight: 1, arbitrary: fc.integer({ min: 1000, max: 20_000 }) })
  .chain((d) => fc.constantFrom('[', '{"a":').map((open) => open.repeat(d) + (open === '[' ? ']' : '}').repeat(d)));

const INVALID_UTF8 = [[0xff], [0x80], [0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0xfe, 0xfe]];

/** Inserts invalid UTF-8 sequences into `text`'s bytes. */
export const withInvalidUtf8 = (text: fc.Arbitrary<string>) =>
  fc
    .tuple(text, fc.array(fc.tuple(fc.nat(), fc.constantFrom(...INVALID_UTF8)), { minLength: 1, maxLength: 3 }))
    .map(([s, splices]) => {
      let b = Buffer.from(s);
      for (const [at, seq] of splices) {
        const i = b.length ? at % (b.length + 1) : 0;
        b = Buffer.concat([b.subarray(0, i), Buffer.from(seq), b.subarray(i)]);
      }
      return b;
    });

const mutation = fc.record({
  op: fc.constantFrom('insert', 'delete', 'replace', 'dup', 'truncate'),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 8 }),
  ch: fc.constantFrom('{', '}', '[', ']', '"', ',', ':', '\\', '0', '-', 'e', 'n', ' ', '\u0000', 'ÿ', '\\u0000', '\\ud800'),
});

/** JSON text with a few random edits. */
export const mutated = (text: fc.Arbitrary<string>) =>
  fc.tuple(text, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(([s, ms]) => {
    let out = s;
    for (const m of ms) {
      const i = m.at % (out.length + 1);
      if (m.op === 'insert') out = out.slice(0, i) + m.ch + out.slice(i);
      else if (m.op === 'delete') out = out.slice(0, i) + out.slice(i + m.len);
      else if (m.op === 'replace') out = out.slice(0, i) + m.ch + out.slice(i + 1);
      else if (m.op === 'dup') out = out.slice(0, i + m.len) + out.slice(i);
      else out = out.slice(0, i);
    }
    return out;
  });

/** A good value most of the time, anything else otherwise. */
export const field = <T>(good: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: good as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: anyJson as fc.Arbitrary<unknown> });

export interface FuzzOutcome {
  seed: number;
  runs: number;
  failed: boolean;
  report: string;
}

/**
 * Runs `properties` side by side (fast-check runs one property's cases one after the other),
 * `runsEach` cases each, property i seeded `baseSeed + i`.
 */
export async function runSeeded<T>(arb: fc.Arbitrary<T>, check: (v: T) => Promise<void>, o: { properties: number; runsEach: number; baseSeed: number }): Promise<FuzzOutcome[]> {
  return Promise.all(
    Array.from({ length: o.properties }, async (_, i) => {
      const seed = o.baseSeed + i;
      const details = await fc.check(
        fc.asyncProperty(arb, async (v) => {
          await check(v);
        }),
        { numRuns: o.runsEach, seed, timeout: 20_000 },
      );
      const report = details.failed
        ? `seed ${seed} path ${details.counterexamplePath}: ${String((details.errorInstance as Error)?.message ?? details.errorInstance).slice(0, 2000)}\ncounterexample: ${JSON.stringify(details.counterexample, (_k, v) => (Buffer.isBuffer(v) || (v && v.type === 'Buffer') ? `<${Buffer.from(v.data ?? v).toString('hex').slice(0, 400)}>` : v)).slice(0, 2000)}`
        : '';
      return { seed, runs: details.numRuns, failed: details.failed, report };
    }),
  );
}

/** Seeds: FUZZ_SEED overrides the fixed default, to explore beyond what CI runs. */
export const baseSeed = (fixed: number): number => (process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : fixed);

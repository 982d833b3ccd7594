// What a benchmark scenario is: a name, a one-line summary, named options with defaults (and
// smaller ones for --quick), and run(). bench/run.ts lists them, parses their flags, prints their
// usage and runs them. Suite scenarios (the standard `npm run bench`) measure every source on the
// run's one database and their results make up the report; standalone ones start what they need
// and print their own tables.
import type { Postgres } from '../../harness/postgres.js';
import type { Source } from '../sources/index.js';

export type OptionSpec =
  | { type: 'number'; default: number; quick?: number; description: string }
  | { type: 'numbers'; default: number[]; quick?: number[]; description: string }
  | { type: 'string'; default: string; quick?: string; description: string };

export type OptionSpecs = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends { type: 'number' } ? number : S extends { type: 'numbers' } ? number[] : string;
export type Values<O extends OptionSpecs> = { -readonly [K in keyof O]: ValueOf<O[K]> };

export interface Context {
  quick: boolean;
  /** The sources to compare (--sources; suite scenarios). */
  sources: Source[];
  /** The run's PostgreSQL (started on first use, migrated, removed at the end). */
  db(): Promise<Postgres>;
  log(...a: unknown[]): void;
}

export interface Scenario<O extends OptionSpecs = OptionSpecs, R = unknown> {
  name: string;
  /** One line for `npm run bench -- --help`. */
  summary: string;
  /** Part of the standard suite: its result goes into the report (bench/lib/report.ts). */
  suite: boolean;
  options: O;
  run(o: Values<O>, ctx: Context): Promise<R>;
  /** Standalone scenarios: the tables to print. */
  print?(r: R, o: Values<O>): string;
  /** Standalone scenarios: false makes the run exit 1. */
  ok?(r: R): boolean;
}

/** Declares a scenario with its option types inferred. */
export const scenario = <const O extends OptionSpecs, R>(s: Scenario<O, R>): Scenario<O, R> => s;

export type AnyScenario = Scenario<any, any>;

/** camelCase option name → its flag. */
export const flagOf = (key: string) => '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

/** A scenario's option values: its defaults (or quick ones), then the flags given. */
export type AnyValues = Record<string, string | number | number[]>;

export function defaults(s: AnyScenario, quick: boolean): AnyValues {
  return Object.fromEntries(Object.entries(s.options as OptionSpecs).map(([k, o]) => [k, quick && o.quick !== undefined ? o.quick : o.default]));
}

/** A flag's value, checked against its option's type. */
export function parseValue(s: AnyScenario, key: string, raw: string | undefined): string | number | number[] {
  const o = (s.options as OptionSpecs)[key]!;
  const flag = flagOf(key);
  if (raw === undefined || raw.startsWith('--')) throw new Error(`${s.name} ${flag} needs a value`);
  const num = (x: string) => {
    const v = Number(x);
    if (x.trim() === '' || !Number.isFinite(v) || v < 0) throw new Error(`${s.name} ${flag}: expected a non-negative number, not "${x}"`);
    return v;
  };
  if (o.type === 'number') return num(raw);
  if (o.type === 'numbers') return raw.split(',').map(num);
  return raw;
}

const show = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));

/** `npm run bench -- <name> --help`. */
export function usage(s: AnyScenario, common: string): string {
  const opts = Object.entries(s.options as OptionSpecs);
  const rows = opts.map(([k, o]) => [`  ${flagOf(k)} ${o.type === 'numbers' ? 'a,b,...' : o.type === 'number' ? 'N' : 'S'}`, o]);
  const w = Math.max(0, ...rows.map(([l]) => (l as string).length));
  const lines = [
    `npm run bench -- ${s.name} [--quick] [flags]`,
    '',
    `${s.summary}${s.suite ? ' (part of the standard suite: its results go into the report)' : ''}`,
    '',
    opts.length ? 'Flags (default; with --quick):' : 'No flags of its own.',
    ...rows.map(([l, o]) => {
      const spec = o as OptionSpec;
      const d = `(${show(spec.default)}${spec.quick !== undefined ? `; ${show(spec.quick)}` : ''})`;
      return `${(l as string).padEnd(w)}  ${spec.description} ${d}`;
    }),
    '',
    common,
  ];
  return lines.join('\n');
}

// Command-line options of a bench: strict (a typo is refused before anything
// runs: a bench can take minutes and bring up labs), with --help.
import { parseArgs } from 'node:util';

type Spec = Record<string, { type: 'string' | 'boolean' }>;
type Values<S extends Spec> = { [K in keyof S]?: S[K]['type'] extends 'string' ? string : boolean };

/** The options given; `--help`/`-h` prints usage and exits 0; anything unknown or malformed prints why and the usage, and exits 2. */
export function benchOptions<S extends Spec>(usage: string, spec: S, argv: string[] = process.argv.slice(2)): Values<S> {
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, strict: true, options: { ...spec, help: { type: 'boolean', short: 'h' } } }).values;
  } catch (e) {
    refuse(usage, e);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values as Values<S>;
}

/**
 * The checks of option values (intOption and the bench's own): an error thrown in them is the
 * caller's typo, so it prints its message and the usage, and exits 2, without a stack trace.
 */
export function checkedOptions<T>(usage: string, check: () => T): T {
  try {
    return check();
  } catch (e) {
    refuse(usage, e);
  }
}

/** A typo on the command line: why, then the usage, and exit 2 before any work. */
function refuse(usage: string, e: unknown): never {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${usage}\n`);
  process.exit(2);
}

/** A whole number option at least `min`, else an error naming the option. */
export function intOption(name: string, value: string | undefined, def: number, min = 1): number {
  if (value === undefined) return def;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} ${value}: expected a whole number, at least ${min}`);
  return n;
}

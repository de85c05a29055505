// Where the CLI's words go: results to stdout, refusals to stderr.

/** A result line (or lines) on stdout. */
export function out(s: string): void {
  process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
}

/** An error about one of several objects: said now, and the command exits 1 at the end. */
export function failOne(msg: string): void {
  process.stderr.write(`Error: ${msg}\n`);
  process.exitCode = 1;
}

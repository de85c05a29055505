// The container logger: containerd's `binary://` log URI makes the runc shim
// start this program for each container with the container's stdout on fd 3,
// its stderr on fd 4 and a readiness pipe on fd 5. It appends both streams to
// the task's log file, one line per output line:
//   <UTC time, seconds> <stdout|stderr> <text>\n   e.g. 2026-11-23T18:29:08Z stdout hello
// It lives with the shim, not with shoald, so output is kept while shoald
// restarts, and the shim reports the exit only after the logger has drained
// the pipes: when wait() returns, the log is complete.
//
// One mawk per stream (mawk is Priority: required on Debian, so always there).
// `-W interactive` makes it read line by line instead of waiting for a full
// buffer, and writes unbuffered; with ORS empty and the line built as one
// string, print is one write(2) per line, and the O_APPEND file keeps the two
// streams' lines whole. strftime's third argument 1 means UTC.
// A NUL byte cuts its line there (mawk reads lines as C strings): the rest of
// that line is lost and the next line is joined to it.
//
// (The `file://` URI, where the shim writes the file itself, loses the tail of
// the output now and then: stderr written just before the exit goes missing.)
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const LOGGER_SCRIPT = `#!/bin/sh
# shoal container logger, started by containerd's runc shim (binary:// log URI):
# fd 3 = the container's stdout, fd 4 = its stderr, fd 5 = readiness pipe.
# Usage: shoal-logger file <path>
# Appends "<UTC time> <stdout|stderr> <text>" per line to <path>, one write per line.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ "$1" = file ] && [ -n "$2" ] || { echo "usage: $0 file <path>" >&2; exit 2; }
# The runtime makes the directory before the task; checked without a process
# (this runs for every container start: each fork and exec here costs CPU).
case "$2" in */*) dir=\${2%/*}; dir=\${dir:-/} ;; *) dir=. ;; esac
[ -d "$dir" ] || mkdir -p "$dir" || exit 1
exec >>"$2" || exit 1
# Ready: the shim waits for EOF on fd 5 before it starts the container.
exec 5>&-
prog='BEGIN { ORS = "" } { print strftime("%Y-%m-%dT%H:%M:%SZ", systime(), 1) " " s " " $0 "\\n" }'
mawk -W interactive -v s=stdout "$prog" <&3 &
mawk -W interactive -v s=stderr "$prog" <&4 &
exec 3<&- 4<&-
wait
`;

/** Write the logger script to `path` (mode 0755) unless it is already there as it should be. */
export function installLogger(path: string): void {
  try {
    if (readFileSync(path, 'utf8') === LOGGER_SCRIPT) return;
  } catch {
    // not there yet
  }
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, LOGGER_SCRIPT, { mode: 0o755 });
  chmodSync(tmp, 0o755);
  renameSync(tmp, path);
}

/** The log URI of a task: binary://<logger>?file=<logPath> (one query key: the shim passes keys in map order). */
export function loggerUri(loggerPath: string, logPath: string): string {
  return `binary://${encodeURI(loggerPath)}?file=${encodeURIComponent(logPath)}`;
}

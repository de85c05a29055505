// Tables and grammars behind the service spec's validation: Linux signal names, and Docker's image
// reference grammar (distribution/reference), with a message per broken rule. (Capability names
// are proto/capabilities.ts: the worker's runtime uses them too.)

/** Linux signal names without the SIG prefix: the ones the worker's runtime can send. */
export const SIGNALS: readonly string[] = [
  'HUP', 'INT', 'QUIT', 'ILL', 'TRAP', 'ABRT', 'IOT', 'BUS', 'FPE', 'KILL', 'USR1', 'SEGV', 'USR2', 'PIPE',
  'ALRM', 'TERM', 'STKFLT', 'CHLD', 'CONT', 'STOP', 'TSTP', 'TTIN', 'TTOU', 'URG', 'XCPU', 'XFSZ', 'VTALRM',
  'PROF', 'WINCH', 'IO', 'POLL', 'PWR', 'SYS',
];

const DOMAIN_COMPONENT = /^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PATH_COMPONENT = /^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST_ALGORITHM = /^[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*$/;

/**
 * Checks `[domain[:port]/]path[:tag][@algorithm:hex]`; returns the broken rule in words, or
 * undefined when the reference is well-formed.
 */
export function checkImageReference(ref: string): string | undefined {
  if (/\s/.test(ref)) return 'it must not contain white space';
  let rest = ref;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const colon = digest.indexOf(':');
    const alg = colon < 0 ? '' : digest.slice(0, colon);
    const hex = colon < 0 ? '' : digest.slice(colon + 1);
    if (!DIGEST_ALGORITHM.test(alg) || !/^[0-9a-fA-F]{32,}$/.test(hex)) return `the digest "${digest}" must be <algorithm>:<hex>, e.g. sha256: and 64 hex digits`;
    if (alg === 'sha256' && !/^[0-9a-f]{64}$/.test(hex)) return 'a sha256 digest must be 64 lower-case hex digits';
  }
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    const tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return `the tag "${tag}" may contain only letters, digits, '_', '.' and '-', must not start with '.' or '-', and is at most 128 characters`;
  }
  if (rest === '') return 'the repository name is missing';
  if (rest.length > 255) return `the repository name must be at most 255 characters, got ${rest.length}`;
  const parts = rest.split('/');
  const first = parts[0]!;
  // Docker's rule: the first component is a registry host when it has a '.' or ':', is
  // localhost, or has upper-case letters (repository paths never do).
  if (parts.length > 1 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase())) {
    parts.shift();
    const [host, port, extra] = first.split(':');
    if (extra !== undefined || !host!.split('.').every((c) => DOMAIN_COMPONENT.test(c))) {
      return `the registry "${first}" must be a host name with an optional :port`;
    }
    if (port !== undefined && !/^[0-9]{1,5}$/.test(port)) return `the registry port in "${first}" must be a number`;
  }
  for (const p of parts) {
    if (p === '') return 'a repository path component is empty (look for a doubled or trailing /)';
    if (p !== p.toLowerCase()) return `the repository name must be lowercase ("${p}")`;
    if (!PATH_COMPONENT.test(p)) {
      return `the repository path component "${p}" must be lower-case letters and digits, separated by '.', '_', '__' or dashes`;
    }
  }
  return undefined;
}

// shoald's state directory is its owner's alone: it holds the node's key, the raft log
// (the cluster CA's key, the registry credentials services carry) and the local socket.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateDir } from '../../../cli/shoald/identity.js';
import { RootCA } from '../../../manager/ca/index.js';
import { tempDir } from '../../support/tempdir.js';

const modeOf = (p: string) => statSync(p).mode & 0o777;

describe('shoald state directory', () => {
  it.each([
    ['made by shoald', (base: string) => path.join(base, 'new', 'state')],
    ['made before, readable by all', (base: string) => {
      const d = path.join(base, 'old');
      mkdirSync(d, { mode: 0o755 });
      return d;
    }],
  ])('%s: mode 0700, its certs directory too', (_name, make) => {
    const dir = make(tempDir('shoal-state-'));
    new StateDir(dir);
    expect(modeOf(dir)).toBe(0o700);
    expect(modeOf(path.join(dir, 'certs'))).toBe(0o700);
  });
});

describe('shoald state directory: certificates', () => {
  const pair = (name: string) => {
    const ca = RootCA.create({ clusterId: name });
    return { caPem: ca.certPem, certPem: ca.certPem, keyPem: ca.keyPem! };
  };
  const a = pair('a');
  const b = pair('b');
  const certsOf = (dir: string) => readdirSync(path.join(dir, 'certs')).sort();

  it('saves and loads the set, leaving no intent behind', () => {
    const dir = tempDir('shoal-state-');
    const s = new StateDir(dir);
    expect(s.loadCerts()).toBeUndefined();
    s.saveCerts(a);
    expect(s.loadCerts()).toEqual(a);
    s.saveCerts(b);
    expect(new StateDir(dir).loadCerts()).toEqual(b);
    expect(certsOf(dir)).toEqual(['ca.pem', 'node-key.pem', 'node.pem']);
  });

  it.each([
    ['after the intent only', (_dir: string) => {}],
    ['after the new key, before the new certificate', (dir: string) => writeFileSync(path.join(dir, 'certs', 'node-key.pem'), b.keyPem)],
    ['after both files, before the intent was removed', (dir: string) => {
      writeFileSync(path.join(dir, 'certs', 'node-key.pem'), b.keyPem);
      writeFileSync(path.join(dir, 'certs', 'node.pem'), b.certPem);
    }],
  ])('a save cut short %s is finished by the next load', (_name, progress) => {
    const dir = tempDir('shoal-state-');
    new StateDir(dir).saveCerts(a);
    writeFileSync(path.join(dir, 'certs', 'saving.json'), JSON.stringify(b));
    progress(dir);
    expect(new StateDir(dir).loadCerts()).toEqual(b);
    expect(certsOf(dir)).toEqual(['ca.pem', 'node-key.pem', 'node.pem']);
  });

  it('refuses a key that is not the certificate\'s, saying what to do', () => {
    const dir = tempDir('shoal-state-');
    const s = new StateDir(dir);
    s.saveCerts(a);
    writeFileSync(path.join(dir, 'certs', 'node-key.pem'), b.keyPem);
    expect(() => s.loadCerts()).toThrow(/node-key\.pem is not the key of .*node\.pem: .*put back the pair, or move .* aside and join the node to the cluster again/);
  });

  it('refuses an intent that does not parse, leaving the files as they were', () => {
    const dir = tempDir('shoal-state-');
    const s = new StateDir(dir);
    s.saveCerts(a);
    writeFileSync(path.join(dir, 'certs', 'saving.json'), '{"caPem": ');
    expect(() => s.loadCerts()).toThrow(/saving\.json is unreadable .*remove it if certs\/node\.pem and certs\/node-key\.pem are a pair/);
    expect(readFileSync(path.join(dir, 'certs', 'node.pem'), 'utf8')).toBe(a.certPem);
  });
});

describe('shoald state directory: what a start finds', () => {
  const ca = RootCA.create({ clusterId: 'c' });
  const certs = { caPem: ca.certPem, certPem: ca.certPem, keyPem: ca.keyPem! };
  const node = { nodeId: 'n1', clusterId: 'c', role: 'manager' as const, raftId: 7, listenAddr: '10.0.0.1:4377', advertiseAddr: '10.0.0.1:4377', managers: [] };
  const raftFile = (dir: string) => {
    mkdirSync(path.join(dir, 'raft'), { recursive: true });
    writeFileSync(path.join(dir, 'raft', 'wal-0'), 'x');
  };

  it.each([
    ['nothing: a node that never joined', (_s: StateDir, _dir: string) => {}, { node: undefined, certs: undefined, droppedLeftovers: false }],
    ['node.json and certificates: a member', (s: StateDir) => {
      s.saveCerts(certs);
      s.saveState(node);
    }, { node, certs, droppedLeftovers: false }],
    ['certificates without node.json: an init or join cut short', (s: StateDir) => s.saveCerts(certs), { node: undefined, certs: undefined, droppedLeftovers: true }],
    ['raft data without node.json: a leave cut short', (_s: StateDir, dir: string) => raftFile(dir), { node: undefined, certs: undefined, droppedLeftovers: true }],
  ])('%s', (_name, setup, want) => {
    const dir = tempDir('shoal-state-');
    setup(new StateDir(dir), dir);
    expect(new StateDir(dir).load()).toEqual(want);
    if (want.droppedLeftovers) {
      expect(readdirSync(path.join(dir, 'certs'))).toEqual([]);
      expect(readdirSync(dir).sort()).toEqual(['certs']);
    }
  });

  it('refuses node.json without certificates, keeping both as they are', () => {
    const dir = tempDir('shoal-state-');
    const s = new StateDir(dir);
    s.saveState(node);
    raftFile(dir);
    expect(() => s.load()).toThrow(/node\.json names node n1 but certs\/ holds no certificates: .*move .* aside and join the node to the cluster again/);
    expect(readdirSync(dir).sort()).toEqual(['certs', 'node.json', 'raft']);
  });
});

// What a node keeps in its state dir once it belongs to a cluster: its ID,
// role, cluster, certificates, and the managers it last knew. Written
// atomically (temp file, fsync, rename) so a crash never leaves half of it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { keyMatchesCert } from '../../proto/tlsfiles.js';

export interface NodeState {
  nodeId: string;
  clusterId: string;
  role: 'manager' | 'worker';
  raftId?: number;
  listenAddr: string;
  advertiseAddr: string;
  managers: Array<{ nodeId: string; raftId: number; addr: string }>;
}

export interface Certs {
  caPem: string;
  certPem: string;
  keyPem: string;
}

function writeAtomic(file: string, data: string, mode = 0o600): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', mode);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A certificate save under way: the new set, whole (see saveCerts). */
const CERT_INTENT = 'certs/saving.json';

export class StateDir {
  constructor(readonly dir: string) {
    // Root's alone, even if it was made before: it holds the node's key, the raft log (with the
    // cluster's CA key and the registry credentials services carry) and the local socket.
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    fs.mkdirSync(path.join(dir, 'certs'), { recursive: true, mode: 0o700 });
  }

  private file(name: string): string {
    return path.join(this.dir, name);
  }

  /**
   * What the node keeps, as shoald starts. node.json is written last by init and join and removed
   * first by leave: without it, certificates or raft data are from one a crash cut short and would
   * be mistaken for the next one's, so they are removed. node.json without certificates is refused.
   */
  load(): { node?: NodeState; certs?: Certs; droppedLeftovers: boolean } {
    const node = this.loadState();
    const droppedLeftovers = !node && this.holdsClusterData();
    if (droppedLeftovers) this.reset();
    const certs = this.loadCerts();
    if (node && !certs) {
      throw new Error(`${this.file('node.json')} names node ${node.nodeId} but certs/ holds no certificates: the node cannot prove its identity; put them back, or move ${this.dir} aside and join the node to the cluster again`);
    }
    return { node, certs, droppedLeftovers };
  }

  loadState(): NodeState | undefined {
    try {
      return JSON.parse(fs.readFileSync(this.file('node.json'), 'utf8')) as NodeState;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`${this.file('node.json')} is unreadable (${(e as Error).message}): fix or remove it (\`shoal swarm leave --force\` resets the node)`);
    }
  }

  saveState(s: NodeState): void {
    writeAtomic(this.file('node.json'), JSON.stringify(s, null, 2));
  }

  /**
   * The node's certificates, after finishing a save a crash cut short. Throws
   * if the key on disk is not the certificate's: the node could not prove who
   * it is to any manager, so it must not start as if it could.
   */
  loadCerts(): Certs | undefined {
    this.finishCertSave();
    let c: Certs;
    try {
      c = {
        caPem: fs.readFileSync(this.file('certs/ca.pem'), 'utf8'),
        certPem: fs.readFileSync(this.file('certs/node.pem'), 'utf8'),
        keyPem: fs.readFileSync(this.file('certs/node-key.pem'), 'utf8'),
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    if (!keyMatchesCert(c.certPem, c.keyPem)) {
      throw new Error(`${this.file('certs/node-key.pem')} is not the key of ${this.file('certs/node.pem')}: the node cannot prove its identity with them; put back the pair, or move ${this.dir} aside and join the node to the cluster again`);
    }
    return c;
  }

  /**
   * The three files are replaced one by one, so the whole set is first written
   * as one file (the intent), and removed once all three are in place: a crash
   * in between is finished by the next load, never leaving a key with another
   * certificate.
   */
  saveCerts(c: Certs): void {
    writeAtomic(this.file(CERT_INTENT), JSON.stringify(c));
    this.writeCertFiles(c);
    this.removeDurably(this.file(CERT_INTENT));
  }

  private writeCertFiles(c: Certs): void {
    writeAtomic(this.file('certs/ca.pem'), c.caPem, 0o644);
    writeAtomic(this.file('certs/node-key.pem'), c.keyPem);
    writeAtomic(this.file('certs/node.pem'), c.certPem, 0o644);
  }

  private finishCertSave(): void {
    let intent: Certs;
    try {
      intent = JSON.parse(fs.readFileSync(this.file(CERT_INTENT), 'utf8')) as Certs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      // writeAtomic renames only a complete file into place: an unreadable intent is damage, not a torn write.
      throw new Error(`${this.file(CERT_INTENT)} is unreadable (${(e as Error).message}): remove it if certs/node.pem and certs/node-key.pem are a pair, else move ${this.dir} aside and join the node to the cluster again`);
    }
    this.writeCertFiles(intent);
    this.removeDurably(this.file(CERT_INTENT));
  }

  private removeDurably(file: string): void {
    fs.rmSync(file, { force: true });
    fsyncDir(path.dirname(file));
  }

  /** When the node's certificate was last written (received), or undefined without one. */
  certsWrittenAt(): number | undefined {
    try {
      return fs.statSync(this.file('certs/node.pem')).mtimeMs;
    } catch {
      return undefined;
    }
  }

  /** Whether certificates or raft data are there (node.json aside). */
  private holdsClusterData(): boolean {
    const nonEmpty = (d: string) => {
      try {
        return fs.readdirSync(this.file(d)).length > 0;
      } catch {
        return false;
      }
    };
    return nonEmpty('certs') || nonEmpty('raft');
  }

  /** Forget the cluster: state (first: see load()), certificates and raft data. */
  reset(): void {
    for (const f of ['node.json', 'certs', 'raft']) fs.rmSync(this.file(f), { recursive: true, force: true });
    fs.mkdirSync(path.join(this.dir, 'certs'), { recursive: true, mode: 0o700 });
  }

  get raftDir(): string {
    return this.file('raft');
  }
}

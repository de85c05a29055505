// Reading a certificate and its key from two files as one pair. A node renews
// its certificate by replacing both files (cli/shoald/identity.ts), so a reader
// that opens them one after the other may get the new key and the old
// certificate. Such a torn read is told apart from a wrong pair by reading
// again: a renewal finishes within milliseconds, a wrong pair stays wrong.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface TlsPem {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/** Whether `keyPem` is the private key of the certificate `certPem` (false for what does not parse). */
export function keyMatchesCert(certPem: string, keyPem: string): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

function readOrExplain(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read the ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const pause = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

/**
 * The CA, certificate and key, read until the key belongs to the certificate
 * (`tries` reads, `gapMs` apart). Throws, naming both files, if it never does.
 */
export function readTlsFiles(f: TlsFiles, tries = 20, gapMs = 25): TlsPem {
  for (let i = 1; ; i++) {
    const certPem = readOrExplain(f.certFile, 'certificate');
    const keyPem = readOrExplain(f.keyFile, 'key');
    if (keyMatchesCert(certPem, keyPem)) return { caPem: readOrExplain(f.caFile, 'CA certificate'), certPem, keyPem };
    if (i >= tries) {
      throw new Error(`the key ${f.keyFile} is not the key of the certificate ${f.certFile} (or one of them is not PEM): give the pair from one node's state dir (certs/node.pem and certs/node-key.pem)`);
    }
    pause(gapMs);
  }
}

// `service create --with-registry-auth`: the client's login for the image's registry,
// from the Docker client's config, encoded for the service; refusals say how to log in.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { registryAuthFor } from '../../../cli/shoal/registryauth.js';
import { decodeRegistryAuth } from '../../../proto/registryauth.js';

function config(doc: unknown): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'shoal-dc-')), 'config.json');
  writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('registryAuthFor', () => {
  const file = config({
    auths: {
      '10.0.0.1:5000': { auth: b64('alice:s3cret:with:colons') },
      'https://index.docker.io/v1/': { username: 'hub', password: 'hubpw' },
      'helper.example': {},
    },
    credsStore: 'desktop',
  });

  it.each([
    ['a registry by host:port', '10.0.0.1:5000/team/app:2', { username: 'alice', password: 's3cret:with:colons', serveraddress: '10.0.0.1:5000' }],
    ['Docker Hub, by its config key', 'busybox', { username: 'hub', password: 'hubpw', serveraddress: 'docker.io' }],
  ])('%s', (_name, image, want) => {
    expect(decodeRegistryAuth(registryAuthFor(image, file))).toEqual(want);
  });

  it.each([
    ['no entry for the registry', () => registryAuthFor('other.example/app', file), /has no username and password for other\.example .*docker login other\.example/],
    ['an entry a credential helper keeps', () => registryAuthFor('helper.example/app', file), /credential helpers are not read/],
    ['no config file', () => registryAuthFor('busybox', '/nonexistent/config.json'), /no credentials for docker\.io: \/nonexistent\/config\.json does not exist; log in first/],
    ['a config that is not JSON', () => registryAuthFor('busybox', config('{nope')), /registry credentials in .*config\.json: not JSON/],
    ['a bad image reference', () => registryAuthFor('Bad//Ref', file), /--with-registry-auth: /],
  ])('refuses: %s', (_name, call, why) => {
    expect(call).toThrow(why);
  });
});

// `service create --with-registry-auth`: the client's login for the image's registry,
// found as the docker CLI finds it (the config's auths, or the credential helper it names,
// run for real), encoded for the service; refusals say how to log in.
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { registryAuthFor } from '../../../cli/shoal/registryauth.js';
import { decodeRegistryAuth } from '../../../proto/registryauth.js';
import { tempDir } from '../../support/tempdir.js';

function config(doc: unknown): string {
  const file = path.join(tempDir('shoal-dc-'), 'config.json');
  writeFileSync(file, typeof doc === 'string' ? doc : JSON.stringify(doc));
  return file;
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

// A credential helper speaking the docker CLI's protocol: `get`, the server on stdin, JSON out.
const bin = tempDir('shoal-helper-');
writeFileSync(path.join(bin, 'docker-credential-shoaltest'), [
  '#!/bin/sh',
  '[ "$1" = get ] || exit 2',
  'read -r server',
  'case "$server" in',
  '  10.0.0.9:5000) echo \'{"ServerURL":"10.0.0.9:5000","Username":"helper-user","Secret":"helper-pw"}\' ;;',
  '  https://index.docker.io/v1/) echo \'{"ServerURL":"https://index.docker.io/v1/","Username":"<token>","Secret":"tok"}\' ;;',
  '  *) echo "credentials not found in native keychain"; exit 1 ;;',
  'esac',
  '',
].join('\n'));
chmodSync(path.join(bin, 'docker-credential-shoaltest'), 0o755);
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };

describe('registryAuthFor', () => {
  const file = config({
    auths: {
      '10.0.0.1:5000': { auth: b64('alice:s3cret:with:colons') },
      'https://index.docker.io/v1/': { username: 'hub', password: 'hubpw' },
      'helper.example': {},
    },
  });
  const helpers = config({ auths: { '10.0.0.1:5000': { auth: b64('alice:pw') } }, credHelpers: { '10.0.0.9:5000': 'shoaltest', 'other.example': 'missing' } });
  const store = config({ auths: { '10.0.0.9:5000': { auth: b64('ignored:pw') } }, credsStore: 'shoaltest' });

  it.each([
    ['a registry by host:port', '10.0.0.1:5000/team/app:2', file, { username: 'alice', password: 's3cret:with:colons', serveraddress: '10.0.0.1:5000' }],
    ['Docker Hub, by its config key', 'busybox', file, { username: 'hub', password: 'hubpw', serveraddress: 'docker.io' }],
    ['a registry credHelpers names: its helper answers', '10.0.0.9:5000/app', helpers, { username: 'helper-user', password: 'helper-pw', serveraddress: '10.0.0.9:5000' }],
    ['other registries of that file: its auths', '10.0.0.1:5000/app', helpers, { username: 'alice', password: 'pw', serveraddress: '10.0.0.1:5000' }],
    ['credsStore: the helper, not the file\'s auths (as docker)', '10.0.0.9:5000/app', store, { username: 'helper-user', password: 'helper-pw', serveraddress: '10.0.0.9:5000' }],
  ])('%s', (_name, image, f, want) => {
    expect(decodeRegistryAuth(registryAuthFor(image, { file: f, env }))).toEqual(want);
  });

  it.each([
    ['no entry for the registry', () => registryAuthFor('other.example/app', { file, env }), /has no username and password for other\.example: .*docker login other\.example/],
    ['an entry without credentials', () => registryAuthFor('helper.example/app', { file, env }), /has no username and password for helper\.example/],
    ['no config file', () => registryAuthFor('busybox', { file: '/nonexistent/config.json', env }), /no credentials for docker\.io: \/nonexistent\/config\.json does not exist; log in first/],
    ['a config that is not JSON', () => registryAuthFor('busybox', { file: config('{nope'), env }), /registry credentials in .*config\.json: not JSON/],
    ['a bad image reference', () => registryAuthFor('Bad//Ref', { file, env }), /--with-registry-auth: /],
    ['a helper that is not installed', () => registryAuthFor('other.example/app', { file: helpers, env }), /credential helper "missing", but docker-credential-missing is not installed/],
    ['a helper without a login for it', () => registryAuthFor('nowhere.example/app', { file: store, env }), /the credential helper "shoaltest" has no login for nowhere\.example: log in with `docker login nowhere\.example`/],
    ['a helper holding an identity token', () => registryAuthFor('busybox', { file: store, env }), /identity token, which shoal cannot pass on/],
  ])('refuses: %s', (_name, call, why) => {
    expect(call).toThrow(why);
  });
});

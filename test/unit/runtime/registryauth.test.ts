// Registry credentials from a Docker client config file: the forms `docker login` and people write,
// the registry names it keys them by, and refusals that name the file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RegistryAuthFile, defaultDockerConfig, parseDockerConfig, registryKey } from '../../../worker/runtime/registryauth.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('registryKey: the registry a config key names, as image references name it', () => {
  it.each([
    ['https://index.docker.io/v1/', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['registry.example.com', 'registry.example.com'],
    ['http://10.0.0.5:5000', '10.0.0.5:5000'],
    ['https://Registry.Example.com:443/v2/', 'registry.example.com:443'],
  ])('%s -> %s', (key, want) => expect(registryKey(key)).toBe(want));
});

describe('parseDockerConfig', () => {
  it('reads auth (base64 of user:password, a password may hold ":") and username/password; skips entries a credential helper keeps', () => {
    const creds = parseDockerConfig(JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
        '10.0.0.5:5000': { username: 'lab', password: 'pw' },
        'helper.example.com': {},
      },
      credsStore: 'desktop',
    }), 'c.json');
    expect([...creds]).toEqual([
      ['docker.io', { username: 'hubuser', password: 'hub:pass' }],
      ['10.0.0.5:5000', { username: 'lab', password: 'pw' }],
    ]);
  });

  it('a config without auths holds no credentials', () => {
    expect(parseDockerConfig('{"credsStore": "pass"}', 'c.json').size).toBe(0);
  });

  it.each([
    ['not json', /registry credentials in c\.json: not JSON/],
    ['[]', /registry credentials in c\.json: expected an object with "auths"/],
    ['{"auths": []}', /"auths" must be an object of registry -> \{ "auth": base64 of user:password \}/],
    [JSON.stringify({ auths: { r: { auth: b64('no-colon') } } }), /auths\["r"\]\.auth must be base64 of user:password/],
  ])('refuses %s, naming the file', (text, error) => {
    expect(() => parseDockerConfig(text, 'c.json')).toThrow(error);
  });
});

describe('RegistryAuthFile', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'shoal-auth-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing file holds nothing; a written one is read, and read again when it changes', () => {
    const file = path.join(dir, 'config.json');
    const auth = new RegistryAuthFile(file);
    expect(auth.credentials('r.example.com')).toBeUndefined();
    writeFileSync(file, JSON.stringify({ auths: { 'r.example.com': { auth: b64('a:1') } } }));
    expect(auth.credentials('r.example.com')).toEqual({ username: 'a', password: '1' });
    expect(auth.credentials('other.example.com')).toBeUndefined();
    writeFileSync(file, JSON.stringify({ auths: { 'r.example.com': { auth: b64('a:second') } } }));
    expect(auth.credentials('r.example.com')).toEqual({ username: 'a', password: 'second' });
    writeFileSync(file, '{');
    expect(() => auth.credentials('r.example.com')).toThrow(`registry credentials in ${file}: not JSON`);
    rmSync(file);
    expect(auth.credentials('r.example.com')).toBeUndefined();
  });

  it('defaults to the Docker client\'s own place: $DOCKER_CONFIG, else ~/.docker', () => {
    expect(defaultDockerConfig({ DOCKER_CONFIG: '/etc/shoal/docker' })).toBe('/etc/shoal/docker/config.json');
    expect(defaultDockerConfig({})).toMatch(/\/\.docker\/config\.json$/);
  });
});

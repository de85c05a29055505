// The registry credentials a service carries: Docker's X-Registry-Auth encoding,
// written by the CLI, checked by the control API, read by the agents.
import { describe, expect, it } from 'vitest';
import { decodeRegistryAuth, encodeRegistryAuth } from '../../../proto/registryauth.js';

const b64url = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('registry credentials of a service', () => {
  it('decode what encode wrote, server address included or not', () => {
    for (const a of [{ username: 'alice', password: 'pä/ss+word=' }, { username: 'bob', password: 'x', serveraddress: '10.0.0.1:5000' }]) {
      const enc = encodeRegistryAuth(a);
      expect(enc).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeRegistryAuth(enc)).toEqual(a);
    }
  });

  it('reads the forms Docker\'s clients write: base64url or standard base64, padded or not', () => {
    const doc = { username: 'u', password: '???>>>', serveraddress: 'r.example' };
    const std = Buffer.from(JSON.stringify(doc)).toString('base64');
    expect(std).toMatch(/[+/=]/);
    for (const enc of [b64url(doc), std, std.replace(/=+$/, '')]) expect(decodeRegistryAuth(enc)).toEqual(doc);
  });

  it.each([
    ['not base64', 'user:pass', 'not base64'],
    ['base64 of something else', Buffer.from('hello').toString('base64url'), 'does not hold JSON'],
    ['a JSON array', b64url(['u', 'p']), 'not an object'],
    ['no username', b64url({ password: 'p' }), 'no username'],
    ['no password', b64url({ username: 'u' }), 'no password'],
    ['an identity token only', b64url({ username: 'u', identitytoken: 'tok' }), 'identity token'],
    ['a number for a password', b64url({ username: 'u', password: 7 }), '"password" is not a string'],
  ])('refuses %s, saying what is wrong', (_name, enc, why) => {
    expect(() => decodeRegistryAuth(enc)).toThrow(why);
  });
});

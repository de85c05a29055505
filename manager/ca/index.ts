export { CaError, type CaErrorCode } from './errors.js';
export {
  RootCA,
  generateKeyAndCsr,
  identityOf,
  ROLE_OU,
  MANAGER_SERVER_NAME,
  type CertIdentity,
  type NodeRole,
} from './rootca.js';
export {
  formatJoinToken,
  parseJoinToken,
  newTokenSecret,
  tokenMatches,
  checkPinnedCa,
  TOKEN_PREFIX,
  TOKEN_VERSION,
  TOKEN_DIGEST_CHARS,
  TOKEN_SECRET_CHARS,
} from './join.js';
export { renewAt, type RenewPolicy } from './renew.js';
export { KeyPool } from './keypool.js';

/**
 * Every failure this module reports on purpose is a CaError with a code a caller can branch on;
 * the message is written for the operator reading a log or a CLI error.
 */
export type CaErrorCode =
  | 'INVALID_TOKEN' // a join token is malformed
  | 'CA_MISMATCH' // the CA a manager presents is not the one the token pins
  | 'BAD_CSR' // unparseable CSR, bad signature, weak or non-RSA key
  | 'BAD_IDENTITY' // issue() was asked for an unusable node ID, cluster ID, role or validity
  | 'BAD_CA' // CA material given to fromPem() is unusable (not a CA, key does not match, ...)
  | 'CA_NO_KEY' // issue() on a verify-only RootCA
  | 'CERT_EXPIRED'
  | 'CERT_NOT_YET_VALID'
  | 'CERT_UNTRUSTED' // not signed by this CA (foreign CA, or altered after signing)
  | 'CERT_INVALID'; // unparseable, or trusted but not a shoal node certificate

export class CaError extends Error {
  constructor(
    readonly code: CaErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}

import { hash } from 'node:crypto';

const MOD = 1n << 64n;

/**
 * An order-independent checksum of a multiset of logins: the sum, modulo 2^64, of the first 8
 * bytes (big-endian) of each login's MD5 over its UTF-8 bytes, written as 16 hex digits.
 * Migration 0012's cpq.login_hash and cpq.login_checksum compute the same in SQL
 * (`cpq.login_checksum(sum(cpq.login_hash(login)))`), so a run's logins received can be compared
 * with the logins the database holds; test/properties/login-checksum.test.ts holds the two equal.
 */
export class LoginChecksum {
  private sum = 0n;

  add(login: string): void {
    this.sum += hash('md5', login, 'buffer').readBigUInt64BE(0);
    if (this.sum >= MOD) this.sum -= MOD;
  }

  /** 16 lower-case hex digits. */
  get hex(): string {
    return this.sum.toString(16).padStart(16, '0');
  }
}

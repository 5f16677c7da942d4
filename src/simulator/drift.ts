import { hashUnit } from './random.js';

/*
 * Field-name drift seen in Oracle's own samples: the same field under another name or case.
 * Chosen per user from a hash of (seed, company, login), so a user drifts the same way in every
 * response and on every endpoint, and adding users does not reshuffle the others.
 */

/** Case variants used for the ~5% of users with "some other field" drifting. */
export const CASE_VARIANTS: ReadonlyArray<readonly [canonical: string, wire: string]> = [
  ['firstName', 'FirstName'],
  ['email', 'EMAIL'],
  ['billCity', 'billcity'],
  ['jobTitle', 'JobTitle'],
  ['phone', 'Phone'],
  ['shipZip', 'shipzip'],
];

const LASTNAME_DRIFT_RATE = 0.1;
const SUPERUSER_DRIFT_RATE = 0.1;
const CASE_DRIFT_RATE = 0.05;

/** canonical field name -> name sent on the wire; undefined when the user does not drift. */
export type FieldRenames = ReadonlyMap<string, string> | undefined;

export function chooseDrift(seed: number, company: string, login: string): FieldRenames {
  const renames = new Map<string, string>();
  if (hashUnit(seed, 'drift:lastname', company, login) < LASTNAME_DRIFT_RATE) {
    renames.set('lastName', 'lastname');
  }
  if (hashUnit(seed, 'drift:superuser', company, login) < SUPERUSER_DRIFT_RATE) {
    renames.set('isUserAdminPermEnabled', 'isSuperUserPermEnabled');
  }
  if (hashUnit(seed, 'drift:case', company, login) < CASE_DRIFT_RATE) {
    const index = Math.floor(hashUnit(seed, 'drift:case-field', company, login) * CASE_VARIANTS.length);
    const variant = CASE_VARIANTS[index];
    if (variant) renames.set(variant[0], variant[1]);
  }
  return renames.size > 0 ? renames : undefined;
}

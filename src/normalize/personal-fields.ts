import type { CpqUserField } from '../cpq/user-fields.js';
import { USER_FIELDS } from './user-fields.js';

/**
 * The personal fields of a CPQ user record: names, e-mail addresses, phone and fax numbers, postal
 * addresses (company lines included), job title and the single sign-on identity (often an e-mail
 * address). HISTORY_RETENTION and `cpq-sync forget`
 * redact them; everything else (site, company, login, ids, flags, groups, permissions, times) is
 * the audit skeleton and stays. Migration 0012's cpq.personal_field_keys() lists the same fields
 * (test/retention.test.ts holds the two equal); the seals leave these fields out, so a change to
 * the list needs a migration that reseals.
 */
export const PERSONAL_FIELDS = [
  'firstName',
  'lastName',
  'email',
  'phone',
  'fax',
  'jobTitle',
  'externalSsoId',
  'billFirstName',
  'billLastName',
  'billCompany',
  'billCompany2',
  'billAddress1',
  'billAddress2',
  'billCity',
  'billStateProvince',
  'billZip',
  'billCountry',
  'billPhone',
  'billFax',
  'billEmail',
  'shipFirstName',
  'shipLastName',
  'shipCompany',
  'shipCompany2',
  'shipAddress1',
  'shipAddress2',
  'shipCity',
  'shipStateProvince',
  'shipZip',
  'shipCountry',
  'shipPhone',
  'shipFax',
  'shipEmail',
] as const satisfies readonly CpqUserField[];

const personal = new Set<string>(PERSONAL_FIELDS);

/** The personal fields, each with the cpq.users (and cpq.user_versions) column that holds it. */
export const PERSONAL_FIELD_COLUMNS: readonly { field: string; column: string }[] = USER_FIELDS.filter((f) => personal.has(f.field));

/** The cpq.users (and cpq.user_versions) columns that hold personal fields. */
export const PERSONAL_COLUMNS: readonly string[] = PERSONAL_FIELD_COLUMNS.map((f) => f.column);

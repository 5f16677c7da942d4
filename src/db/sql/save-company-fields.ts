import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** An integration user the run stored, and the fields the company feed gave at its last read. */
export interface CompanyFieldsOf {
  company: string;
  login: string;
  fields: readonly string[];
}

/**
 * Records, after the run's merge and in its transaction, the fields the company feed gave each
 * integration user of `users` (migration 0035: what a later read of one feed keeps of the other's),
 * and removes the rows of the site's users that are no longer integration users or are deleted:
 * a user coming back as one must not be given a list its rows no longer match.
 */
export async function saveCompanyFields(on: Queryable, site: string, users: readonly CompanyFieldsOf[]): Promise<void> {
  if (users.length > 0) {
    // Each list as JSON text: unnest() of a text[][] needs lists of one length.
    await runCompiled(
      on,
      sql`INSERT INTO cpq.user_company_fields (user_id, site, fields)
          SELECT u.id, u.site, ARRAY(SELECT json_array_elements_text(given.fields::json))
          FROM unnest(${users.map((u) => u.company)}::text[], ${users.map((u) => u.login)}::text[], ${users.map((u) => JSON.stringify(u.fields))}::text[])
            AS given(company_login, login, fields)
          JOIN cpq.users u ON u.site = ${site} AND u.company_login = given.company_login AND u.login = given.login
          WHERE u.is_integration_user AND u.deleted_at IS NULL
          ON CONFLICT (user_id) DO UPDATE SET fields = excluded.fields`.compile(queryBuilder),
    );
  }
  await runCompiled(
    on,
    sql`DELETE FROM cpq.user_company_fields f USING cpq.users u
        WHERE f.site = ${site} AND u.id = f.user_id AND (NOT u.is_integration_user OR u.deleted_at IS NOT NULL)`.compile(queryBuilder),
  );
}

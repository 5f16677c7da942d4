import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** Of a stored integration user, the fields each feed's record had at its last read; undefined where not known. */
export interface FeedFields {
  company: readonly string[] | undefined;
  integration: readonly string[] | undefined;
}

/** A copy of an integration user the run read (its row's content hash), and its FeedFields. */
export interface FeedFieldsOf extends FeedFields {
  company_login: string;
  login: string;
  content_hash: string;
}

/**
 * Records, after the run's merge and in its transaction, the fields each feed gave each
 * integration user of `users` (migration 0035: what a later read of one feed keeps of the
 * other's), and removes the rows of the site's users that are no longer integration users or are
 * deleted: a user coming back as one must not be given lists its row no longer matches. Of a
 * user read more than once, the lists of the copy the merge kept (the row's content hash), else
 * of the one last in `users`.
 */
export async function saveFeedFields(on: Queryable, site: string, users: readonly FeedFieldsOf[]): Promise<void> {
  if (users.length > 0) {
    // Each list as JSON text (null where not known): unnest() of a text[][] needs lists of one length.
    const list = (fields: readonly string[] | undefined) => (fields === undefined ? null : JSON.stringify(fields));
    await runCompiled(
      on,
      sql`INSERT INTO cpq.user_feed_fields (user_id, site, company_fields, integration_fields)
          SELECT DISTINCT ON (u.id) u.id, u.site,
                 CASE WHEN given.company_fields IS NOT NULL THEN ARRAY(SELECT json_array_elements_text(given.company_fields::json)) END,
                 CASE WHEN given.integration_fields IS NOT NULL THEN ARRAY(SELECT json_array_elements_text(given.integration_fields::json)) END
          FROM unnest(${users.map((u) => u.company_login)}::text[], ${users.map((u) => u.login)}::text[], ${users.map((u) => u.content_hash)}::text[],
                      ${users.map((u) => list(u.company))}::text[], ${users.map((u) => list(u.integration))}::text[])
            WITH ORDINALITY AS given(company_login, login, content_hash, company_fields, integration_fields, n)
          JOIN cpq.users u ON u.site = ${site} AND u.company_login = given.company_login AND u.login = given.login
          WHERE u.is_integration_user AND u.deleted_at IS NULL
          ORDER BY u.id, given.content_hash = u.content_hash DESC, given.n DESC
          ON CONFLICT (user_id) DO UPDATE SET company_fields = excluded.company_fields, integration_fields = excluded.integration_fields
          -- Unchanged lists are not rewritten: a full integration read (every zip run) reads every integration user.
          WHERE (cpq.user_feed_fields.company_fields, cpq.user_feed_fields.integration_fields)
                IS DISTINCT FROM (excluded.company_fields, excluded.integration_fields)`.compile(queryBuilder),
    );
  }
  await runCompiled(
    on,
    sql`DELETE FROM cpq.user_feed_fields f USING cpq.users u
        WHERE f.site = ${site} AND u.id = f.user_id AND (NOT u.is_integration_user OR u.deleted_at IS NOT NULL)`.compile(queryBuilder),
  );
}

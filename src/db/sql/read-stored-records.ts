import { sql } from 'kysely';
import { parseExactJson } from '../../exact-json.js';
import { SPELLED_COLUMNS, type StoredSpellings } from '../../normalize/stored-spellings.js';
import type { AccessPermissionRow, GroupRow } from '../../normalize/user-record.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';
import { isoUtcSql } from '../as-text.js';
import { lastKnown } from './last-known-identity.js';
import type { FeedFields } from './save-feed-fields.js';

/** The last dateAdded (ISO-8601 UTC text) and CPQ id (text) known of a stored user (last-known-identity.ts); null where none is. */
export interface KnownHolder {
  dateAdded: string | null;
  cpqId: string | null;
}

/**
 * The stored records (`raw`, numbers exact) of the given present users, keyed by
 * `key(company, login)`; `integrationOnly` leaves out users not stored as integration users. A
 * deleted user's record is left out: a user of that login coming back may be someone else (a new
 * integration user), and must not be given the old one's name, email or access permissions.
 * With each record, what its row holds as text (its text columns, its permission rows, and with
 * `groups` its group rows with the label and type cpq.groups holds of each group): the
 * spelling of a number jsonb kept the value of only (1E2 reads back from raw as 100), which the
 * caller puts back (withStoredSpellings); and for an integration user, the fields each feed's
 * record had at its last read (cpq.user_feed_fields), undefined where not recorded; and the
 * dateAdded and CPQ id last known of the user (KnownHolder), which tell another user given the login.
 */
export async function readStoredRecords(
  on: Queryable,
  site: string,
  users: readonly { company: string; login: string }[],
  { integrationOnly, groups: withGroups, key }: { integrationOnly: boolean; groups: boolean; key: (company: string, login: string) => string },
): Promise<Map<string, { record: Record<string, unknown>; spellings: StoredSpellings; feedFields: FeedFields; holder: KnownHolder }>> {
  const companies = users.map((u) => u.company);
  const logins = users.map((u) => u.login);
  const onlyIntegration = integrationOnly ? sql` AND u.is_integration_user` : sql``;
  const texts = sql.join(SPELLED_COLUMNS.map((c) => sql.ref(`u.${c.column}`)));
  // The sql tag, not the builder: a row-value IN over unnest() of two parameters reads better as SQL.
  // raw as text: node-postgres would parse jsonb with JSON.parse and round the int64s. The text
  // columns and permission rows as JSON of text (json, not jsonb: nothing in them is a number);
  // the rows in their key's code-unit order, so that the row a copy listed twice is matched with
  // does not follow the order the heap happens to hold them in.
  const rows = await runCompiled(
    on,
    sql<{
      company_login: string;
      login: string;
      raw: string;
      texts: (string | null)[];
      permissions: AccessPermissionRow[] | null;
      groups: string[] | null;
      company_fields: string[] | null;
      integration_fields: string[] | null;
      known_date_added: string | null;
      known_cpq_id: string | null;
    }>`
     SELECT u.company_login, u.login, u.raw::text AS raw, json_build_array(${texts}) AS texts,
       (SELECT json_agg(json_build_object('type', p.type, 'variableName', p.variable_name, 'name', p.name, 'hasAccess', p.has_access) ORDER BY p.type COLLATE "C", p.variable_name COLLATE "C")
          FROM cpq.user_access_permissions p WHERE p.site = u.site AND p.user_id = u.id) AS permissions,
       ${withGroups ? sql`(SELECT json_agg(m.group_variable_name ORDER BY m.group_variable_name COLLATE "C") FROM cpq.user_groups m WHERE m.site = u.site AND m.user_id = u.id)` : sql`NULL`} AS groups,
       f.company_fields, f.integration_fields,
       ${sql.raw(isoUtcSql(lastKnown('u', 'date_added')))} AS known_date_added, ${sql.raw(lastKnown('u', 'cpq_id'))}::text AS known_cpq_id
     -- A list of a user stored as no integration user is an older release's leftover (its runs do not remove them).
     FROM cpq.users u LEFT JOIN cpq.user_feed_fields f ON f.user_id = u.id AND u.is_integration_user
     WHERE u.site = ${site} AND (u.company_login, u.login) IN (SELECT * FROM unnest(${companies}::text[], ${logins}::text[]))
       AND u.deleted_at IS NULL${onlyIntegration}`.compile(queryBuilder),
  );
  // Each group's label and type once, not per member: they are the site's, and one record may have
  // made them long (a label of megabytes, repeated for every user read, was a result of gigabytes).
  const names = [...new Set(rows.flatMap((r) => r.groups ?? []))];
  const described = new Map<string, GroupRow>();
  if (names.length > 0) {
    const groups = await runCompiled(
      on,
      sql<GroupRow>`SELECT variable_name AS "variableName", label, type FROM cpq.groups WHERE site = ${site} AND variable_name = ANY(${names}::text[])`.compile(
        queryBuilder,
      ),
    );
    for (const g of groups) described.set(g.variableName, g);
  }
  const groupRow = (name: string): GroupRow => described.get(name) ?? { variableName: name, label: null, type: null };
  return new Map(
    rows.map((r) => [
      key(r.company_login, r.login),
      {
        record: parseExactJson(r.raw) as Record<string, unknown>,
        spellings: { texts: r.texts, permissions: r.permissions ?? [], groups: (r.groups ?? []).map(groupRow) },
        feedFields: { company: r.company_fields ?? undefined, integration: r.integration_fields ?? undefined },
        holder: { dateAdded: r.known_date_added, cpqId: r.known_cpq_id },
      },
    ]),
  );
}

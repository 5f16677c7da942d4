import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** The user `forget` names, locked for the rest of its transaction; undefined when there is none. */
export async function lockUserForErasure(
  client: Queryable,
  site: string,
  company: string,
  login: string,
): Promise<{ id: string; deleted_at: Date | null } | undefined> {
  const [row] = await runCompiled(
    client,
    sql<{
      id: string;
      deleted_at: Date | null;
    }>`SELECT id, deleted_at FROM cpq.users WHERE site = ${site} AND company_login = ${company} AND login = ${login} FOR UPDATE`.compile(queryBuilder),
  );
  return row;
}

/** Records an erasure in cpq.erasures; returns its id. */
export async function recordErasure(
  client: Queryable,
  erasure: { site: string; company: string; login: string; userId: string; reason: string; requestedBy: string; rowsRedacted: Record<string, number> },
): Promise<string> {
  const [row] = await runCompiled(
    client,
    sql<{ id: string }>`INSERT INTO cpq.erasures (site, company_login, login, user_id, reason, requested_by, rows_redacted)
        VALUES (${erasure.site}, ${erasure.company}, ${erasure.login}, ${erasure.userId}::bigint, ${erasure.reason}, ${erasure.requestedBy},
                ${JSON.stringify(erasure.rowsRedacted)}::jsonb)
        RETURNING id`.compile(queryBuilder),
  );
  return row!.id;
}

/**
 * The alert outbox (cpq.alert_outbox, written by the alerts of another migration), when this
 * database has one: replaces each of `values` in the text and jsonb columns of the user's rows
 * (those whose site, company_login and login name the user) by "[redacted]". Returns the rows changed;
 * undefined when there is no outbox, or it does not name users by site, company_login and login.
 */
export async function scrubAlertOutbox(
  client: Queryable,
  site: string,
  company: string,
  login: string,
  values: readonly string[],
): Promise<number | undefined> {
  const columns = await runCompiled(
    client,
    sql<{ name: string; type: string }>`SELECT column_name AS name, data_type AS type FROM information_schema.columns
        WHERE table_schema = 'cpq' AND table_name = 'alert_outbox'`.compile(queryBuilder),
  );
  const names = new Set(columns.map((c) => c.name));
  const keys = ['site', 'company_login', 'login'];
  if (!keys.every((k) => names.has(k))) return undefined;
  const scrubbed = columns.filter((c) => (c.type === 'text' || c.type === 'jsonb') && !keys.includes(c.name));
  if (scrubbed.length === 0 || values.length === 0) return 0;
  // Longest first, so that a value inside a longer one (a name inside an e-mail) does not leave the rest.
  const ordered = [...values].sort((a, b) => b.length - a.length);
  const replaced = (column: string, type: string) => {
    // In jsonb text a value appears JSON-escaped (to_json(v) without its quotes).
    let expression = type === 'jsonb' ? sql`${sql.ref(column)}::text` : sql`${sql.ref(column)}`;
    for (const value of ordered) {
      const needle = type === 'jsonb' ? JSON.stringify(value).slice(1, -1) : value;
      expression = sql`replace(${expression}, ${needle}, '[redacted]')`;
    }
    return sql`${sql.ref(column)} = ${type === 'jsonb' ? sql`(${expression})::jsonb` : expression}`;
  };
  const [row] = await runCompiled(
    client,
    sql<{ n: string }>`WITH changed AS (
        UPDATE cpq.alert_outbox SET ${sql.join(scrubbed.map((c) => replaced(c.name, c.type)))}
        WHERE site = ${site} AND company_login = ${company} AND login = ${login} RETURNING 1)
      SELECT count(*)::text AS n FROM changed`.compile(queryBuilder),
  );
  return Number(row!.n);
}

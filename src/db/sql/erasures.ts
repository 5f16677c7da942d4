import { sql } from 'kysely';
import { isoUtcText } from '../as-text.js';
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
 * database has one: replaces each of `values` in the `last_error` of the user's rows (those whose
 * site, company_login and login name the user) by "[redacted]". Returns the rows changed;
 * undefined when there is no outbox, or it does not name users by site, company_login and login.
 *
 * Only `last_error`: it is the one column holding text from outside (a webhook's answer, which
 * may quote the alert and whatever the receiver adds). The others hold no personal field (a
 * rule, a flag's column, a group's or permission's name, booleans, times, a digest), and a
 * personal value found inside them by chance (a job title "admin" in the rule admin_flag, a "2"
 * in the idempotency key) is not one: rewriting it broke the row, or failed the erasure.
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
    sql<{ name: string }>`SELECT column_name AS name FROM information_schema.columns
        WHERE table_schema = 'cpq' AND table_name = 'alert_outbox'`.compile(queryBuilder),
  );
  const names = new Set(columns.map((c) => c.name));
  if (!['site', 'company_login', 'login'].every((k) => names.has(k))) return undefined;
  if (!names.has('last_error') || values.length === 0) return 0;
  // Longest first, so that a value inside a longer one (a name inside an e-mail) does not leave the rest.
  let expression = sql`last_error`;
  for (const value of [...values].sort((a, b) => b.length - a.length)) expression = sql`replace(${expression}, ${value}, '[redacted]')`;
  const [row] = await runCompiled(
    client,
    sql<{ n: string }>`WITH changed AS (
        UPDATE cpq.alert_outbox SET last_error = ${expression}
        WHERE site = ${site} AND company_login = ${company} AND login = ${login} AND last_error IS DISTINCT FROM ${expression} RETURNING 1)
      SELECT count(*)::text AS n FROM changed`.compile(queryBuilder),
  );
  return Number(row!.n);
}

/** The newest erasure recorded for this user (its id, when, who asked), or undefined when none is. */
export async function lastErasure(
  client: Queryable,
  site: string,
  company: string,
  login: string,
  userId: string,
): Promise<{ id: string; erasedAt: string; requestedBy: string } | undefined> {
  const [row] = await runCompiled(
    client,
    sql<{ id: string; erased_at: string; requested_by: string }>`SELECT id::text AS id, ${isoUtcText(sql.ref('erased_at'))} AS erased_at, requested_by
        FROM cpq.erasures WHERE site = ${site} AND company_login = ${company} AND login = ${login} AND user_id = ${userId}::bigint
        ORDER BY id DESC LIMIT 1`.compile(queryBuilder),
  );
  return row && { id: row.id, erasedAt: row.erased_at, requestedBy: row.requested_by };
}

/**
 * Whether erasure `id` is recorded, as committed: asked on another connection once the answer to a
 * forget's COMMIT was lost, which may have gone through. Asked once the erasure's transaction has
 * ended: it holds user `userId`'s row (lockUserForErasure) until it commits or rolls back, and a
 * server still committing (a slow fsync, a synchronous standby) when asked at once had no row yet
 * (review HP). The wait is bounded by the session's lock_timeout (SYNC_LOCK_TIMEOUT): past it, this
 * throws, and whether the erasure committed is not known.
 */
export async function erasureCommitted(on: Queryable, id: string, userId: string): Promise<boolean> {
  await runCompiled(on, sql`SELECT 1 FROM cpq.users WHERE id = ${userId}::bigint FOR KEY SHARE`.compile(queryBuilder));
  // A statement of its own: one snapshot taken after the wait sees the erasure's commit.
  const rows = await runCompiled(on, sql<{ id: string }>`SELECT id FROM cpq.erasures WHERE id = ${id}::bigint`.compile(queryBuilder));
  return rows.length === 1;
}

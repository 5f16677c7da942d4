import { sql, type RawBuilder } from 'kysely';
import { PERSONAL_COLUMNS } from '../../normalize/personal-fields.js';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** `first_name = NULL, …, raw = cpq.redact_personal_fields(raw)`: what redacting a user row or version sets. */
function redactedRow(): RawBuilder<unknown> {
  return sql.join([...PERSONAL_COLUMNS.map((c) => sql`${sql.ref(c)} = NULL`), sql`raw = cpq.redact_personal_fields(raw)`]);
}

/** Rows redacted, by table. */
export type RedactedRows = Record<'users' | 'user_versions' | 'user_change_log', number>;

/** Whether a redaction changed any row: what is worth a log line. */
export function redactedAny(redacted: RedactedRows): boolean {
  return redacted.users + redacted.user_versions + redacted.user_change_log > 0;
}

/** Runs an UPDATE and returns how many rows it changed. */
async function count(on: Queryable, update: RawBuilder<unknown>): Promise<number> {
  const [row] = await runCompiled(
    on,
    sql<{ n: string }>`WITH changed AS (${update} RETURNING 1) SELECT count(*)::text AS n FROM changed`.compile(queryBuilder),
  );
  return Number(row!.n);
}

/**
 * HISTORY_RETENTION, in the run's transaction: redacts the personal fields (columns, and the same
 * keys in raw and in change diffs) of what expired since the last run, that is before `cutoff`
 * and not before the cutoff cpq.retention_state says is done: versions that ended then, users
 * deleted then (their row, every version and every change of theirs), and changes logged then.
 * A user `runId` restored counts as deleted then when the deletion it undid (the version this run
 * ended, not an earlier deletion of the same user) is: the merge, before
 * this, moved that deletion into a version ending now (which the window would first reach a whole
 * retention later) and copied its values into the restore's diff; such a user's versions and
 * changes are redacted, its current row (the restored one) is not.
 * Returns the rows redacted (none when the cutoff has not moved on).
 */
export async function redactExpired(client: Queryable, site: string, cutoff: Date, runId?: string): Promise<RedactedRows> {
  const [state] = await runCompiled(
    client,
    sql<{ done: Date | null }>`SELECT (SELECT redacted_before FROM cpq.retention_state WHERE site = ${site} FOR UPDATE) AS done`.compile(queryBuilder),
  );
  const done = state?.done ?? null;
  const redacted: RedactedRows = { users: 0, user_versions: 0, user_change_log: 0 };
  if (done !== null && done >= cutoff) return redacted;
  // -infinity: the first run with a retention redacts everything already older than the cutoff.
  const from = done === null ? sql`'-infinity'::timestamptz` : sql`${done}::timestamptz`;
  const to = sql`${cutoff}::timestamptz`;
  const set = redactedRow();
  redacted.users = await count(client, sql`UPDATE cpq.users SET ${set} WHERE site = ${site} AND deleted_at >= ${from} AND deleted_at < ${to}`);
  // Users deleted in the window: every version and every change of theirs, whenever it ended. Each
  // condition its own statement, so that each finds its rows by an index (an OR of the two would
  // scan the whole table every run).
  const inWindow = (column: string) => sql`${sql.ref(column)} >= ${from} AND ${sql.ref(column)} < ${to}`;
  const deletedNow = sql`SELECT id FROM cpq.users WHERE site = ${site} AND deleted_at >= ${from} AND deleted_at < ${to}`;
  // By the run's restore rows (its index on run_id), then their ended versions by user id.
  const deleted =
    runId === undefined
      ? deletedNow
      : sql`${deletedNow} UNION SELECT l.user_id FROM cpq.user_change_log l
            WHERE l.run_id = ${runId}::bigint AND l.change = 'restore'
              AND EXISTS (SELECT 1 FROM cpq.user_versions v WHERE v.id = l.user_id AND v.ended_by_run_id = ${runId}::bigint
                          AND v.deleted_at >= ${from} AND v.deleted_at < ${to})`;
  const personalDiff = sql`diff IS NOT NULL AND EXISTS (SELECT 1 FROM jsonb_object_keys(diff) k WHERE cpq.is_personal_key(k))`;
  redacted.user_versions =
    (await count(client, sql`UPDATE cpq.user_versions SET ${set} WHERE site = ${site} AND ${inWindow('valid_to')}`)) +
    (await count(client, sql`UPDATE cpq.user_versions SET ${set} WHERE id IN (${deleted}) AND NOT (${inWindow('valid_to')})`));
  redacted.user_change_log =
    (await count(
      client,
      sql`UPDATE cpq.user_change_log SET diff = cpq.redact_personal_fields(diff) WHERE site = ${site} AND ${inWindow('detected_at')} AND ${personalDiff}`,
    )) +
    (await count(
      client,
      sql`UPDATE cpq.user_change_log SET diff = cpq.redact_personal_fields(diff)
          WHERE user_id IN (${deleted}) AND NOT (${inWindow('detected_at')}) AND ${personalDiff}`,
    ));
  await runCompiled(
    client,
    sql`INSERT INTO cpq.retention_state (site, redacted_before) VALUES (${site}, ${to})
        ON CONFLICT (site) DO UPDATE SET redacted_before = excluded.redacted_before, updated_at = now()`.compile(queryBuilder),
  );
  return redacted;
}

/** A user row or version that still holds a personal field: a personal column set, or a personal key of raw not redacted. */
function holdsPersonal(): RawBuilder<unknown> {
  return sql`(${sql.join(
    [...PERSONAL_COLUMNS.map((c) => sql`${sql.ref(c)} IS NOT NULL`), sql`raw IS DISTINCT FROM cpq.redact_personal_fields(raw)`],
    sql` OR `,
  )})`;
}

/**
 * One user's rows: its current row, every version, every change; only those that still hold a
 * personal field, so that the counts say what was erased (none, for a user forgotten already).
 */
export async function redactUser(client: Queryable, userId: string): Promise<RedactedRows> {
  const set = redactedRow();
  return {
    users: await count(client, sql`UPDATE cpq.users SET ${set} WHERE id = ${userId}::bigint AND ${holdsPersonal()}`),
    user_versions: await count(client, sql`UPDATE cpq.user_versions SET ${set} WHERE id = ${userId}::bigint AND ${holdsPersonal()}`),
    user_change_log: await count(
      client,
      sql`UPDATE cpq.user_change_log SET diff = cpq.redact_personal_fields(diff)
          WHERE user_id = ${userId}::bigint AND diff IS DISTINCT FROM cpq.redact_personal_fields(diff)`,
    ),
  };
}

/** The distinct personal values one user's row and versions hold (to find copies of them elsewhere). */
export async function personalValues(client: Queryable, userId: string): Promise<string[]> {
  const columns = sql.join(PERSONAL_COLUMNS.map((c) => sql.ref(c)));
  const rows = await runCompiled(
    client,
    sql<{ value: string }>`
      SELECT DISTINCT v.value FROM (
        SELECT ${columns} FROM cpq.users WHERE id = ${userId}::bigint
        UNION ALL
        SELECT ${columns} FROM cpq.user_versions WHERE id = ${userId}::bigint
      ) AS r
      CROSS JOIN LATERAL jsonb_each_text(jsonb_strip_nulls(to_jsonb(r))) AS v
      WHERE v.value <> ''`.compile(queryBuilder),
  );
  return rows.map((r) => r.value);
}

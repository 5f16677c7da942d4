import type pg from 'pg';
import Cursor from 'pg-cursor';
import { sql } from 'kysely';
import { isoUtcText, selectList, type TextColumn } from '../as-text.js';
import { queryBuilder } from '../compiled-query.js';

/** Where a change-log read starts. */
export type ChangesFrom =
  /** Changes of runs that committed after the one that took this watermark (commit_seq). */
  | { after: string }
  /**
   * Changes of runs with a higher id, and of runs that committed after that run (one that did not
   * commit: after it began): runs of several sites overlap, and one may commit after a run with a
   * higher id (it then shows in a poll from either id: none is missed, one may be repeated). From a
   * run that did not commit, "after it began" is after the newest commit_seq committed when its
   * record was opened (commit_seq_at_start, the column's default). A run recorded before that
   * column (migration 0044) reads it from committed_at, which a run takes before its COMMIT: one whose COMMIT lasted past that begin is
   * left out (review HR; README says so).
   */
  | { runId: string }
  /** Changes of runs that committed at or after this time: a run committing as the poll reads may be missed. */
  | { time: Date };

const c = (name: string) => sql.ref(`c.${name}`);

/** The change log's columns, every one as text. */
const CHANGE_COLUMNS: TextColumn[] = [
  { name: 'change_id', json: false, expr: sql`${c('id')}::text` },
  { name: 'run_id', json: false, expr: sql`${c('run_id')}::text` },
  { name: 'change', json: false, expr: c('change') },
  { name: 'company_login', json: false, expr: c('company_login') },
  { name: 'login', json: false, expr: c('login') },
  { name: 'party_number', json: false, expr: c('party_number') },
  { name: 'date_modified', json: false, expr: isoUtcText(c('date_modified')) },
  { name: 'detected_at', json: false, expr: isoUtcText(c('detected_at')) },
  { name: 'diff', json: true, expr: sql`(SELECT v.diff FROM cpq.user_changes v WHERE v.id = c.id)::text` },
  // The watermark of the change's run: the greatest value loaded is where the next poll starts.
  { name: 'commit_seq', json: false, expr: sql`${c('commit_seq')}::text` },
  // Last, so that the columns of a release before sites keep their places.
  { name: 'site', json: false, expr: c('site') },
];

/**
 * Opens a cursor over the change log in commit order: every change of the runs (of `sites`, or of
 * every site when empty) that committed after `from`, a row of `columns` (as text) each. On the caller's client, so that it reads in the
 * caller's transaction.
 */
export function openChangeLog(
  client: pg.PoolClient,
  from: ChangesFrom,
  sites: readonly string[],
): { columns: TextColumn[]; cursor: Cursor<(string | null)[]> } {
  const where =
    'after' in from
      ? sql`r.commit_seq > ${from.after}`
      : 'runId' in from
        ? // A run that did not commit (failed, running) has no number: the newest committed before it began stands in.
          sql`(r.id > ${from.runId} OR r.commit_seq > (SELECT coalesce(s.commit_seq, s.commit_seq_at_start,
                                                                      (SELECT max(p.commit_seq) FROM cpq.sync_runs p WHERE p.committed_at < s.started_at), 0)
                                                     FROM cpq.sync_runs s WHERE s.id = ${from.runId}))`
        : sql`r.committed_at >= ${from.time}`;
  const ofSites = sites.length > 0 ? sql`AND r.site = ANY(${sites}::text[])` : sql``;
  // The sql tag, not the builder: a select list of text casts over a sorted subquery reads better
  // as SQL, and the rows are streamed by pg-cursor in array row mode, not run by runCompiled.
  // Sorted first, diffs after: an insert's diff is computed from history (cpq.user_changes), and
  // computed below the sort it would be sorted along, spilling gigabytes for a first load.
  const query = sql`SELECT ${selectList(CHANGE_COLUMNS)}
     FROM (SELECT l.id, l.run_id, l.change, l.company_login, l.login, l.party_number, l.date_modified, l.detected_at, r.commit_seq, l.site
           FROM cpq.sync_runs r JOIN cpq.user_change_log l ON l.run_id = r.id
           WHERE r.commit_seq IS NOT NULL AND ${where} ${ofSites}
           ORDER BY r.commit_seq, l.id) c
     ORDER BY c.commit_seq, c.id`.compile(queryBuilder);
  return { columns: CHANGE_COLUMNS, cursor: client.query(new Cursor<(string | null)[]>(query.sql, [...query.parameters], { rowMode: 'array' })) };
}

import { sql, type RawBuilder } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** `site` is one of `sites`; true when none are named (every site). */
const inSites = (site: RawBuilder<unknown>, sites: readonly string[] | undefined): RawBuilder<unknown> =>
  sites === undefined ? sql`true` : sql`${site} = ANY(${[...sites]}::text[])`;

export interface ActiveCount {
  company_login: string;
  active_rows: string;
  active_checksum: string;
  /** The last full read of the company this database recorded, if any. */
  last_full_run_id: string | null;
  last_full_received: string | null;
  last_full_received_checksum: string | null;
  last_full_active_checksum: string | null;
  /**
   * The company's latest counts record (of any run) carried forward by the change log's inserts,
   * restores and deletions of later runs: the active users the change log says the database holds
   * now. Null when no run recorded counts of the company (a database before migration 0012).
   */
  logged_since_run_id: string | null;
  logged_rows: string | null;
  logged_checksum: string | null;
  /** When a run last confirmed one of the active users (their latest last_synced_at); null when there are none. */
  last_synced_at: Date | null;
}

/**
 * Per company: the users the database holds active now (count, login checksum), its last recorded
 * full read, and the active users its change log accounts for (`logged_*`). Only a run adds,
 * restores or deletes users of cpq.users (forget and HISTORY_RETENTION redact fields), each with a
 * change-log row in the same transaction (record-company-counts.ts carries counts forward by the
 * same rows), so the two agree unless cpq.users was changed outside a run: a login renamed, a user
 * added or marked deleted by SQL, which CPQ's count alone does not show when the number stays the
 * same.
 */
export async function readActiveCounts(on: Queryable, site: string, companies: readonly string[]): Promise<ActiveCount[]> {
  return runCompiled(
    on,
    sql<ActiveCount>`
      SELECT c.company AS company_login, a.n::text AS active_rows, cpq.login_checksum(a.h) AS active_checksum, a.last_synced_at,
             f.run_id::text AS last_full_run_id, f.received::text AS last_full_received,
             f.received_checksum AS last_full_received_checksum, f.active_checksum AS last_full_active_checksum,
             l.run_id::text AS logged_since_run_id, (l.active_rows + coalesce(d.n, 0))::text AS logged_rows,
             CASE WHEN l.run_id IS NOT NULL THEN cpq.login_checksum(('x' || l.active_checksum)::bit(64)::bigint + coalesce(d.h, 0)) END AS logged_checksum
      FROM unnest(${[...companies]}::text[]) AS c(company)
      CROSS JOIN LATERAL (
        SELECT count(*) AS n, sum(cpq.login_hash(u.login)) AS h, max(u.last_synced_at) AS last_synced_at FROM cpq.users u
        WHERE u.site = ${site} AND u.company_login = c.company AND u.deleted_at IS NULL
      ) a
      LEFT JOIN LATERAL (
        SELECT k.run_id, k.received, k.received_checksum, k.active_checksum FROM cpq.run_company_counts k
        WHERE k.site = ${site} AND k.company_login = c.company AND k.mode = 'full' ORDER BY k.run_id DESC LIMIT 1
      ) f ON true
      LEFT JOIN LATERAL (
        SELECT k.run_id, k.active_rows, k.active_checksum FROM cpq.run_company_counts k
        WHERE k.site = ${site} AND k.company_login = c.company ORDER BY k.run_id DESC LIMIT 1
      ) l ON true
      -- Runs after the latest counts that changed the company without reading it (its users
      -- deleted when CPQ no longer lists it) are in the change log too.
      LEFT JOIN LATERAL (
        SELECT sum(CASE x.change WHEN 'delete' THEN -1 ELSE 1 END) AS n,
               sum(CASE x.change WHEN 'delete' THEN -1 ELSE 1 END * cpq.login_hash(x.login)::numeric) AS h
        FROM cpq.user_change_log x
        WHERE x.run_id > l.run_id AND x.site = ${site} AND x.company_login = c.company AND x.change IN ('insert', 'restore', 'delete')
      ) d ON true
      ORDER BY c.company`.compile(queryBuilder),
  );
}

export interface SealCheck {
  site: string;
  run_id: string;
  /** The site of the run the seal is of (cpq.sync_runs): the seal's own `site` has no key to it. */
  run_site: string | null;
  previous_run_id: string | null;
  /** The sealed run before this one of its site, by run id. */
  expected_previous_run_id: string | null;
  content_sha256: string;
  /** cpq.run_content_sha256 of the run now. */
  content_now: string;
  chain_sha256: string;
  /** The chain hash recomputed from the previous seal's stored chain hash and this run's content now. */
  chain_now: string;
  /**
   * The chain hash recomputed from the previous seal's stored chain hash and this seal's stored
   * content hash: what it holds when the run's rows were altered but not its seal.
   */
  chain_as_sealed: string;
}

/**
 * The sealed runs, those that changed the most users first (by their run records): sessions taking
 * them in this order end about together, where a large run taken last was left to one session
 * while the others had finished. The records only order the work: every seal is read whatever
 * they say.
 */
export async function readSeals(on: Queryable, sites?: readonly string[]): Promise<{ run_id: string; lines: number }[]> {
  return runCompiled(
    on,
    sql<{ run_id: string; lines: number }>`
      SELECT s.run_id::text, s.lines FROM cpq.run_seals s
      LEFT JOIN cpq.sync_runs r ON r.id = s.run_id
      WHERE ${inSites(sql`s.site`, sites)}
      ORDER BY coalesce(r.users_inserted + r.users_updated + r.users_deleted + r.users_restored, 0) DESC, s.run_id`.compile(queryBuilder),
  );
}

/** cpq.run_content_sha256 of one run now, of the seal's `lines`: the whole cost of verifying it (jsonb work on every row it sealed). */
export async function readRunContent(on: Queryable, runId: string, lines: number): Promise<string> {
  const [row] = await runCompiled(
    on,
    sql<{ content: string }>`SELECT cpq.run_content_sha256(${runId}::bigint, ${lines}::smallint) AS content`.compile(queryBuilder),
  );
  return row!.content;
}

/**
 * Every seal with its content and chain hash recomputed now, by site and run. A run's content
 * hash is taken from `contentNow` when it holds one (readRunContent of the same snapshot,
 * computed on several sessions at once), else computed here. OFFSET 0 keeps the LATERAL subquery
 * from being pulled up, which would compute each run's content hash twice (it is read twice).
 * Each chain hash is recomputed from the stored one before it, over the content now (chain_now)
 * and over the content as sealed (chain_as_sealed); verify asks readChainHashes for the others it
 * needs after a seal that is not sound.
 */
export async function readSealChecks(on: Queryable, sites?: readonly string[], contentNow: ReadonlyMap<string, string> = new Map()): Promise<SealCheck[]> {
  return runCompiled(
    on,
    sql<SealCheck>`
      SELECT s.site, s.run_id::text, r.site AS run_site, s.previous_run_id::text, (lag(s.run_id) OVER w)::text AS expected_previous_run_id,
             s.content_sha256, n.content_now, s.chain_sha256,
             cpq.run_chain_sha256(s.site, s.run_id, lag(s.chain_sha256) OVER w, n.content_now) AS chain_now,
             cpq.run_chain_sha256(s.site, s.run_id, lag(s.chain_sha256) OVER w, s.content_sha256) AS chain_as_sealed
      FROM cpq.run_seals s
      LEFT JOIN cpq.sync_runs r ON r.id = s.run_id
      LEFT JOIN unnest(${[...contentNow.keys()]}::bigint[], ${[...contentNow.values()]}::text[]) AS g(run_id, content_now) ON g.run_id = s.run_id
      CROSS JOIN LATERAL (SELECT coalesce(g.content_now, cpq.run_content_sha256(s.run_id, s.lines)) AS content_now OFFSET 0) n
      WHERE ${inSites(sql`s.site`, sites)}
      WINDOW w AS (PARTITION BY s.site ORDER BY s.run_id)
      ORDER BY s.site, s.run_id`.compile(queryBuilder),
  );
}

/**
 * Every chain hash of run `runId` of `site` from one of `previous` (chain hashes the seal before it
 * may have held) and one of `contents`, distinct, in the order they are given. verify asks for
 * them only after a seal that is not sound, so a sound chain costs no statement here.
 */
export async function readChainHashes(on: Queryable, site: string, runId: string, previous: readonly string[], contents: readonly string[]): Promise<string[]> {
  const rows = await runCompiled(
    on,
    sql<{ chain: string }>`
      SELECT cpq.run_chain_sha256(${site}, ${runId}::bigint, p.chain, x.content) AS chain
      FROM unnest(${[...previous]}::text[]) WITH ORDINALITY AS p(chain, i) CROSS JOIN unnest(${[...contents]}::text[]) WITH ORDINALITY AS x(content, j)
      ORDER BY p.i, x.j`.compile(queryBuilder),
  );
  return [...new Set(rows.map((r) => r.chain))];
}

/**
 * Successful runs that have no seal though a release that seals ran them (a seal removed, or a run
 * of a release that did not seal): those after the site's first seal, and those that started once
 * migration 0012 was applied (cpq.seals_began_at(), migration 0032). The second also holds a
 * site's runs before its first seal (or of a site with none) to it: else a failed run there, its
 * status set to succeeded, took rows added under it for the unsealed history of a release before
 * seals (review FQ). A seal of the run filed under another site is none: it sits in that site's
 * chain, which a verify of the run's site does not read (review HH).
 */
export async function readUnsealedRuns(on: Queryable, sites?: readonly string[]): Promise<{ site: string; run_id: string }[]> {
  return runCompiled(
    on,
    sql<{ site: string; run_id: string }>`
      SELECT r.site, r.id::text AS run_id FROM cpq.sync_runs r
      WHERE ${inSites(sql`r.site`, sites)} AND r.status = 'succeeded' AND NOT EXISTS (SELECT 1 FROM cpq.run_seals s WHERE s.run_id = r.id AND s.site = r.site)
        AND (r.id > (SELECT min(s.run_id) FROM cpq.run_seals s WHERE s.site = r.site)
          OR r.started_at >= cpq.seals_began_at())
      ORDER BY r.site, r.id`.compile(queryBuilder),
  );
}

/**
 * Runs that did not succeed yet are named by change-log rows or ended versions. Only a run's own
 * transaction writes those, and only a succeeded run commits it: such rows were added afterwards,
 * and no seal covers them (seals cover sealed runs), while the as-of functions and the change log
 * would show them. One indexed probe per table for each such run (failed runs are few). A run
 * with a seal is left to it: releases before 265adc1 could record a run failed whose commit had
 * reached the database, seal included. A run older than the database's first seal is still
 * named (before_seals): a release before seals (migration 0012) could record a run failed the
 * same way, with no seal to show it, but so could a forger name a failed first run; which of the
 * two it is, the run's record tells a reader who can see when 0012 was applied.
 */
export async function readRowsOfUnfinishedRuns(
  on: Queryable,
  sites?: readonly string[],
): Promise<{ site: string; run_id: string; status: string; before_seals: boolean }[]> {
  return runCompiled(
    on,
    sql<{ site: string; run_id: string; status: string; before_seals: boolean }>`
      SELECT r.site, r.id::text AS run_id, r.status,
             coalesce(r.id < (SELECT min(s.run_id) FROM cpq.run_seals s), true) AS before_seals
      FROM cpq.sync_runs r
      WHERE ${inSites(sql`r.site`, sites)} AND r.status <> 'succeeded' AND NOT EXISTS (SELECT 1 FROM cpq.run_seals s WHERE s.run_id = r.id AND s.site = r.site)
        AND (EXISTS (SELECT 1 FROM cpq.user_change_log x WHERE x.run_id = r.id)
          OR EXISTS (SELECT 1 FROM cpq.group_changes x WHERE x.run_id = r.id)
          OR EXISTS (SELECT 1 FROM cpq.user_versions x WHERE x.ended_by_run_id = r.id)
          OR EXISTS (SELECT 1 FROM cpq.user_group_versions x WHERE x.ended_by_run_id = r.id)
          OR EXISTS (SELECT 1 FROM cpq.user_access_permission_versions x WHERE x.ended_by_run_id = r.id)
          OR EXISTS (SELECT 1 FROM cpq.group_versions x WHERE x.ended_by_run_id = r.id))
      ORDER BY r.site, r.id`.compile(queryBuilder),
  );
}

/**
 * Run ids that change-log rows name but no run of their site has: cpq.user_change_log keeps no
 * foreign key to cpq.sync_runs (migration 0004), so a row can be added under any id, another
 * site's run's too, and its site's seals do not cover it (a seal reads its run's rows by id).
 */
export async function readChangesOfNoRun(on: Queryable, sites?: readonly string[]): Promise<{ site: string; run_id: string }[]> {
  return runCompiled(
    on,
    sql<{ site: string; run_id: string }>`
      SELECT DISTINCT l.site, l.run_id::text AS run_id FROM cpq.user_change_log l
      WHERE ${inSites(sql`l.site`, sites)} AND NOT EXISTS (SELECT 1 FROM cpq.sync_runs r WHERE r.id = l.run_id AND r.site = l.site)
      ORDER BY l.site, run_id`.compile(queryBuilder),
  );
}

/**
 * Runs that ended versions or logged group changes of a site but are runs of another site. Those
 * tables' foreign keys hold the run to exist, not to be of the row's site, and a seal reads its
 * run's rows by id: a verify of the row's site alone (--site) reads no seal that covers them, yet
 * its as-of answers show them (review FQ). Each table is read whole, as the seals read each of
 * their ended rows.
 */
export async function readEndedOfOtherSites(on: Queryable, sites?: readonly string[]): Promise<{ site: string; run_id: string }[]> {
  const of = (table: string, run: string) => sql`SELECT DISTINCT site, ${sql.ref(run)} AS run_id FROM ${sql.table(table)} WHERE ${inSites(sql`site`, sites)}`;
  return runCompiled(
    on,
    sql<{ site: string; run_id: string }>`
      SELECT DISTINCT x.site, x.run_id::text AS run_id
      FROM (${of('cpq.group_changes', 'run_id')} UNION ${of('cpq.user_versions', 'ended_by_run_id')}
            UNION ${of('cpq.user_group_versions', 'ended_by_run_id')} UNION ${of('cpq.user_access_permission_versions', 'ended_by_run_id')}
            UNION ${of('cpq.group_versions', 'ended_by_run_id')}) x
      WHERE NOT EXISTS (SELECT 1 FROM cpq.sync_runs r WHERE r.id = x.run_id AND r.site = x.site)
      ORDER BY x.site, run_id`.compile(queryBuilder),
  );
}

/**
 * The most companies per site that /metrics exports. Each is two series, and how many companies a
 * site has is CPQ's to say: a hostile CPQ listing new ones at each run made a scrape read, format
 * and keep 300,000 series, and the worker of every site ran out of memory at each scrape, again
 * after every restart (review HE). The rest are counted (cpq_sync_company_users_omitted).
 */
export const METRICS_COMPANIES_PER_SITE = 10_000;

export interface CompanyCount {
  site: string;
  company: string;
  /** CPQ's totalResults at the company's last full read; null when none recorded one. */
  cpq: number | null;
  /** Users the database held active after the run. */
  database: number;
}

export interface LatestCompanyCounts {
  /** The companies of each site's last run that read companies, the first `limit` by name, by site and name. */
  counts: CompanyCount[];
  /** Per site with such a run: how many companies it read (those past `limit` too). */
  companiesRead: { site: string; companies: number }[];
}

/**
 * What /metrics exports per company, read at every scrape: for each site (of `sites`, or every
 * one: a worker reads its own, so that one of many sites' workers keeps at most `limit` companies
 * of each of its sites, review HG), the companies its last run that read companies read (a
 * company no longer read, gone from CPQ or from CPQ_COMPANIES, is no longer exported, where its
 * last counts stayed forever), with the users the database held
 * active after that run and CPQ's totalResults at the company's last full read. Read through
 * indexes: each site's last runs by sync_runs_site_idx, the run's companies by the primary key,
 * each one's last full read by migration 0024's index; so its cost follows the companies of one
 * run per site (at most `limit`), not the rows every run has left. MATERIALIZED: inlined, each
 * run's companies were counted once per company exported (23 s for 10,000).
 */
export async function readLatestCompanyCounts(
  on: Queryable,
  sites?: readonly string[],
  limit: number = METRICS_COMPANIES_PER_SITE,
): Promise<LatestCompanyCounts> {
  const rows = await runCompiled(
    on,
    sql<{ site: string; companies: string; company: string; cpq: string | null; database: string }>`
      WITH latest AS MATERIALIZED (
        SELECT s.name AS site, r.id AS run_id, (SELECT count(*) FROM cpq.run_company_counts c WHERE c.run_id = r.id) AS companies
        FROM cpq.sites s
        CROSS JOIN LATERAL (
          SELECT r.id FROM cpq.sync_runs r
          WHERE r.site = s.name AND EXISTS (SELECT 1 FROM cpq.run_company_counts c WHERE c.run_id = r.id)
          ORDER BY r.id DESC LIMIT 1
        ) r
        WHERE ${inSites(sql`s.name`, sites)}
      )
      SELECT l.site, l.companies::text, k.company_login AS company, k.active_rows::text AS database, f.total_results::text AS cpq
      FROM latest l
      CROSS JOIN LATERAL (
        SELECT c.company_login, c.active_rows FROM cpq.run_company_counts c WHERE c.run_id = l.run_id ORDER BY c.company_login LIMIT ${limit}
      ) k
      LEFT JOIN LATERAL (
        SELECT c.total_results FROM cpq.run_company_counts c
        WHERE c.site = l.site AND c.company_login = k.company_login AND c.mode = 'full' ORDER BY c.run_id DESC LIMIT 1
      ) f ON true
      ORDER BY l.site, k.company_login`.compile(queryBuilder),
  );
  const companiesRead = new Map<string, number>();
  for (const r of rows) companiesRead.set(r.site, Number(r.companies));
  return {
    counts: rows.map((r) => ({ site: r.site, company: r.company, cpq: r.cpq === null ? null : Number(r.cpq), database: Number(r.database) })),
    companiesRead: [...companiesRead].map(([site, companies]) => ({ site, companies })),
  };
}

import pg from 'pg';
import { siteCpqUrl, type CpqConfig, type SiteConfig } from '../config.js';
import { createAuthenticator } from '../cpq/auth.js';
import { CpqHttpClient, pathSegmentProblem } from '../cpq/http-client.js';
import { companyUserCount, listCompanies } from '../cpq/streams.js';
import type { Queryable } from '../db/compiled-query.js';
import { inReadOnlySnapshot } from '../db/sql/in-read-only-snapshot.js';
import { countPresentUsers } from '../db/sql/count-present-users.js';
import { readSiteCpqUrl } from '../db/sql/site-cpq-url.js';
import {
  readActiveCounts,
  readChainHashes,
  readChangesOfNoRun,
  readEndedOfOtherSites,
  readRowsOfUnfinishedRuns,
  readRunContent,
  readSealChecks,
  readSeals,
  readUnsealedRuns,
} from '../db/sql/read-proofs.js';
import type { Logger } from '../logger.js';
import { SyncError, asSyncError, printable } from '../errors.js';
import { textTable } from '../text-table.js';
import { requireSameCpq } from './site-cpq-url.js';

/** One company: what CPQ holds now against what the database holds active. */
export interface CompanyCountCheck {
  company: string;
  /** totalResults CPQ reports now; undefined when it sent none. */
  cpq: number | undefined;
  database: number;
  databaseChecksum: string;
  /** The last full read recorded for the company: records received and whether their logins' checksum equals the active logins' after it. */
  lastFullRead: { runId: string; received: number; checksumsEqual: boolean } | undefined;
  /**
   * The active users the change log accounts for (the latest counts record, run `sinceRunId`,
   * carried forward by later runs' changes), when they are not those the database holds: users
   * changed in cpq.users outside a run. Undefined when they agree, or no counts were recorded.
   */
  notAsLogged: { sinceRunId: string; rows: number; checksum: string } | undefined;
  /**
   * Set when the company list does not name the company (CPQ_COMPANIES, or CPQ's list with `*`):
   * no run reads it, so the database's users are as last read: by run `lastReadRunId` (its latest
   * counts record, when one was recorded), a run confirming one of them last at `lastConfirmedAt`.
   */
  notListed: { list: string; lastReadRunId: string | undefined; lastConfirmedAt: Date | undefined } | undefined;
  ok: boolean;
}

/**
 * `cpq-sync verify`: asks CPQ for each company's user count now (one request of one record each)
 * and compares it with the users the database holds active. The companies the database holds
 * active users of that the list does not name (CPQ_COMPANIES, or CPQ's company list with `*`) are
 * checked too, whatever the list: no run reads them, so their users would otherwise go unchecked
 * however far they are from CPQ's (review IL: a narrowed CPQ_COMPANIES). One whose users CPQ
 * answers 404 for holds 0 there. Left out: those holding only integration users (their company is
 * the integration feed's to say, and need not be one CPQ lists) and those whose name CPQ cannot be
 * asked about.
 */
async function verifyCounts(http: CpqHttpClient, cpq: CpqConfig, pool: pg.Pool, site: string): Promise<CompanyCountCheck[]> {
  const all = cpq.companies.includes('*');
  let companies = all ? (await listCompanies(http, cpq)).logins : cpq.companies;
  const listed = new Set(companies);
  const unlisted = new Set<string>();
  for (const [company, present] of await countPresentUsers(pool, site)) {
    if (listed.has(company) || present.integrationUsers === present.users || pathSegmentProblem(company) !== undefined) continue;
    unlisted.add(company);
  }
  companies = [...companies, ...unlisted];
  const list = all ? "CPQ's company list" : 'CPQ_COMPANIES';
  const now = new Map<string, number | undefined>();
  for (const company of companies) {
    now.set(company, await companyUserCount(http, cpq, company, unlisted.has(company)));
  }
  const stored = await readActiveCounts(pool, site, companies);
  return stored.map((s) => {
    const database = Number(s.active_rows);
    const count = now.get(s.company_login);
    const notAsLogged =
      s.logged_since_run_id !== null && (s.logged_rows !== s.active_rows || s.logged_checksum !== s.active_checksum)
        ? { sinceRunId: s.logged_since_run_id, rows: Number(s.logged_rows), checksum: s.logged_checksum! }
        : undefined;
    return {
      company: s.company_login,
      cpq: count,
      database,
      databaseChecksum: s.active_checksum,
      lastFullRead:
        s.last_full_run_id === null
          ? undefined
          : {
              runId: s.last_full_run_id,
              received: Number(s.last_full_received),
              checksumsEqual: s.last_full_received_checksum === s.last_full_active_checksum,
            },
      notAsLogged,
      notListed: unlisted.has(s.company_login)
        ? { list, lastReadRunId: s.logged_since_run_id ?? undefined, lastConfirmedAt: s.last_synced_at ?? undefined }
        : undefined,
      ok: count === database && notAsLogged === undefined,
    };
  });
}

/**
 * verifyCounts for one configured site, with its own HTTP client; refused, before any request, when
 * the site's base URL names another CPQ than its rows were read from (cpq.sites.cpq_url): its
 * counts, compared with another CPQ's, would say nothing (review CD: "every company matches").
 */
export async function verifySite(site: SiteConfig, pool: pg.Pool, log: Logger): Promise<CompanyCountCheck[]> {
  const recorded = await readSiteCpqUrl(pool, site.name);
  requireSameCpq(site.name, recorded, siteCpqUrl(site.cpq.baseUrl, site.cpq.pathPrefix), false, "its counts would be compared with another CPQ's");
  const http = new CpqHttpClient(site.cpq, createAuthenticator(site.cpq.auth, site.cpq.requestTimeoutMs, site.cpq.ca), log);
  // As a run's error: it may quote what CPQ said, which a gateway reflecting the request may have made the credentials (review HM).
  return verifyCounts(http, site.cpq, pool, site.name).catch((err: unknown) => {
    const error = asSyncError(err);
    throw new SyncError(error.kind, http.withoutCredentials(error.message, `a ${error.kind} error`), error.details());
  });
}

/** Exit code 1 when any company differs. */
export const countsExitCode = (checks: readonly CompanyCountCheck[]) => (checks.every((c) => c.ok) ? 0 : 1);

const table = (header: string[], rows: string[][]) => textTable(header, rows, new Set(), { rule: true });

/** The comparison for a terminal: one row per company and the verdict. */
export function formatCounts(site: string, checks: readonly CompanyCountCheck[]): string {
  const rows = checks.map((c) => [
    c.company,
    c.cpq === undefined ? 'not reported' : String(c.cpq),
    String(c.database),
    c.cpq === undefined ? '?' : String(c.database - c.cpq),
    c.databaseChecksum,
    c.lastFullRead === undefined
      ? 'none recorded'
      : `run ${c.lastFullRead.runId}: ${c.lastFullRead.received} received, logins ${c.lastFullRead.checksumsEqual ? 'match' : 'DIFFER'}`,
    c.ok ? 'ok' : c.cpq === c.database ? 'NOT AS LOGGED' : 'DIFFERENT',
  ]);
  const differ = checks.filter((c) => !c.ok).length;
  const notAsLogged = checks.flatMap((c) =>
    c.notAsLogged === undefined
      ? []
      : [
          `${printable(c.company)}: the database holds ${c.database} users, checksum ${c.databaseChecksum}; its change log since run ${c.notAsLogged.sinceRunId} says ${c.notAsLogged.rows}, checksum ${c.notAsLogged.checksum}: cpq.users was changed outside a run`,
        ],
  );
  // The rows of a company no run reads are as last read, however current the latest run makes them look.
  const notListed = checks.flatMap((c) =>
    c.notListed === undefined
      ? []
      : [
          `${printable(c.company)}: not in ${c.notListed.list}, no run reads it: its ${c.database} users in the database are as ` +
            (c.notListed.lastReadRunId === undefined ? 'last read' : `run ${c.notListed.lastReadRunId} last read them`) +
            (c.notListed.lastConfirmedAt === undefined ? '' : ` (the latest confirmed at ${c.notListed.lastConfirmedAt.toISOString()})`),
        ],
  );
  return [
    `site ${site}`,
    ...table(['company', 'CPQ now', 'database', 'difference', 'login checksum', 'last full read', 'verdict'], rows),
    '',
    differ === 0 ? `every company matches (${checks.length})` : `${differ} of ${checks.length} companies differ`,
    ...notAsLogged,
    ...notListed,
    '',
  ].join('\n');
}

/** A problem of a site's chain, naming the run (a run's first, when the seal check finds several). */
export interface ChainBreak {
  site: string;
  runId: string;
  problem: string;
}

export interface ChainReport {
  /** Per site: runs sealed and the newest chain hash (to keep elsewhere: a chain recomputed whole would match itself). */
  sites: { site: string; runs: number; head: string }[];
  /** Every one found, by site, then by run, earliest first. */
  breaks: ChainBreak[];
}

/**
 * How many sessions verify --chain recomputes the runs' content hashes on at once. A run's hash is
 * one statement on one core of the database server (200-300 µs per version it ended), so one
 * session took as long as every run's added up; several take about as long as the largest run's,
 * when the server has the cores. Four: the pool of a command that is no worker holds four (one
 * run's), and a verify run beside the workers should not take every core of the server from them.
 */
export const VERIFY_SESSIONS = 4;

/**
 * `cpq-sync verify --chain`: recomputes every seal and names every run that no longer matches its
 * own, earliest first. Each seal is checked against the stored one before it, so a break does not
 * hide a later one: a site whose run of March was altered when the database was upgraded (0040 in a
 * Turkish locale) still has a run altered in May named (review GW). With a pool: on up to VERIFY_SESSIONS sessions of one snapshot
 * (inReadOnlySnapshot), each run's content hash on one of them, then the chain and the other checks
 * on the first, so that a run committing meanwhile is not read in part (as one statement read it).
 * With a client (a session in a transaction of its own): on it alone, what it sees.
 * `signal` cancels the statements running.
 */
export async function verifyChain(on: pg.Pool | pg.PoolClient, only?: readonly string[], signal?: AbortSignal): Promise<ChainReport> {
  if (!(on instanceof pg.Pool)) return verifyChainOn([on], only);
  return inReadOnlySnapshot(
    on,
    (sessions) => {
      const statements = sessions.map((s) => s.on);
      return verifyChainOn(statements, only);
    },
    { sessions: VERIFY_SESSIONS, signal },
  );
}

/** How many chain hashes an altered seal may have held are carried to the next (see verifyChainOn). */
const MAX_PREVIOUS_CHAINS = 8;

async function verifyChainOn(sessions: readonly Queryable[], only: readonly string[] | undefined): Promise<ChainReport> {
  const on = sessions[0]!;
  const seals = await readSeals(on, only);
  const contentNow = new Map<string, string>();
  let next = 0;
  await Promise.all(
    sessions.map(async (session) => {
      for (let seal = seals[next++]; seal !== undefined; seal = seals[next++])
        contentNow.set(seal.run_id, await readRunContent(session, seal.run_id, seal.lines));
    }),
  );
  const checks = await readSealChecks(on, only, contentNow);
  const sites = new Map<string, { site: string; runs: number; head: string }>();
  const breaks: ChainBreak[] = [];
  // The chain hashes the seal before may have held, besides its stored one, when that seal was
  // altered (its content hash no longer matches its rows, its link is wrong, it is filed under
  // another site than its run's, or its chain hash does not follow): each later seal is held to
  // those too, so that only the altered one is named, not the untouched seal after it (reviews
  // HC, HD, HG). Empty while the seals are sound, so a sound
  // chain costs no statement here. At most MAX_PREVIOUS_CHAINS are kept, those through the seals
  // before first (two per altered seal in a row, over its content as sealed and as now): past
  // them a forgery of many seals in a row may name an untouched one after it, never leave an
  // altered one unnamed.
  let previousChains: string[] = [];
  for (const c of checks) {
    const entry = sites.get(c.site);
    if (entry === undefined) previousChains = []; // the site's first seal follows from none
    sites.set(c.site, { site: c.site, runs: (entry?.runs ?? 0) + 1, head: c.chain_sha256 });
    const named = (problem: string) => breaks.push({ site: c.site, runId: c.run_id, problem });
    const asSealed = c.content_now === c.content_sha256;
    const linked = c.previous_run_id === c.expected_previous_run_id;
    // A seal's site has no key to its run's: one filed under another site proves nothing of the run's own (review HH).
    const ownSite = c.run_site === c.site;
    if (!asSealed)
      named(
        `what run ${c.run_id} committed no longer matches its seal (a change-log row, ended version or company count was altered, added or removed, or the seal's content hash was)`,
      );
    if (!linked)
      named(
        `run ${c.run_id}'s seal links to run ${c.previous_run_id ?? 'none'}, not to the sealed run before it (${c.expected_previous_run_id ?? 'none'}): a seal was removed or inserted`,
      );
    if (!ownSite)
      named(
        `run ${c.run_id}'s seal is filed under this site, but run ${c.run_id} is ${c.run_site === null ? 'no run' : `a run of site ${printable(c.run_site)}`}: a seal was moved or made for it`,
      );
    const inPlace = asSealed && linked && ownSite;
    // Over the content as sealed and as now: a run whose rows were altered is named for that, above.
    const fromStored = [c.chain_as_sealed, c.chain_now];
    if (inPlace && fromStored.includes(c.chain_sha256)) {
      previousChains = [];
      continue;
    }
    const fromPrevious = previousChains.length === 0 ? [] : await readChainHashes(on, c.site, c.run_id, previousChains, [c.content_sha256, c.content_now]);
    const possible = [...new Set([...fromPrevious, ...fromStored])];
    const follows = possible.includes(c.chain_sha256);
    // A seal whose link is wrong was named for it: its chain hash follows from no seal we can name.
    if (linked && !follows)
      named(`run ${c.run_id}'s chain hash does not follow from the run before it (this seal was altered, or the one before it was rewritten to match)`);
    // A sound seal (its hash follows from the stored one before it or from one that seal may have
    // held) is what the next follows from; else the next is held to what this one may have held.
    previousChains = inPlace && follows ? [] : possible.filter((h) => h !== c.chain_sha256).slice(0, MAX_PREVIOUS_CHAINS);
  }
  for (const u of await readUnsealedRuns(on, only))
    breaks.push({
      site: u.site,
      runId: u.run_id,
      problem: `run ${u.run_id} succeeded but has no seal (removed, or committed by a worker of a release before migration 0012 left running after the upgrade)`,
    });
  for (const u of await readChangesOfNoRun(on, only)) {
    breaks.push({
      site: u.site,
      runId: u.run_id,
      problem: `change-log rows name run ${u.run_id}, which is no run of this site: they were added, outside any seal`,
    });
  }
  for (const u of await readEndedOfOtherSites(on, only)) {
    breaks.push({
      site: u.site,
      runId: u.run_id,
      problem: `ended versions or group changes name run ${u.run_id}, which is no run of this site: they were added, outside any seal`,
    });
  }
  for (const u of await readRowsOfUnfinishedRuns(on, only)) {
    breaks.push({
      site: u.site,
      runId: u.run_id,
      problem:
        `run ${u.run_id} ${u.status}, yet change-log rows or ended versions name it: they were added afterwards, outside any seal` +
        (u.before_seals
          ? ' (or, if it started before migration 0012 was applied, by a release before seals that recorded it failed after its commit went through)'
          : ''),
    });
  }
  // By site in the order the seals list them (a site with no seal after them, by name), then by
  // run; the sort is stable, so one run's problems keep the order the checks found them in.
  const siteOrder = [...sites.keys()];
  const siteRank = (site: string) => (siteOrder.includes(site) ? siteOrder.indexOf(site) : siteOrder.length);
  const byNumber = (a: string, b: string) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);
  const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  breaks.sort((a, b) => siteRank(a.site) - siteRank(b.site) || byCodeUnits(a.site, b.site) || byNumber(a.runId, b.runId));
  return { sites: [...sites.values()], breaks };
}

const sealedRuns = (n: number) => `${n} sealed run${n === 1 ? '' : 's'}`;

export function formatChain(report: ChainReport): string {
  // A broken site's head is printed as no head to keep: a later verify passing through it proves nothing.
  // Site names through printable: a break's may come from rows of no run (the change log's site
  // has no CHECK), written by the forger this command is there to catch (review HB).
  const broken = new Set(report.breaks.map((b) => b.site));
  const out = report.sites.map((s) =>
    broken.has(s.site)
      ? `site ${printable(s.site)}: ${sealedRuns(s.runs)}, chain BROKEN (below): its head ${s.head} is not one to keep`
      : `site ${printable(s.site)}: ${sealedRuns(s.runs)}, chain head ${s.head}`,
  );
  if (report.sites.length === 0) out.push('no sealed runs yet');
  for (const b of report.breaks) out.push(`site ${printable(b.site)}: BROKEN at run ${b.runId}: ${b.problem}`);
  if (report.breaks.length === 0 && report.sites.length > 0) out.push('every seal matches what its run committed');
  return `${out.join('\n')}\n`;
}

import type pg from 'pg';
import { countDeletionCandidates } from '../db/sql/count-deletion-candidates.js';
import type { StreamProgress } from './stream-progress.js';

export interface DeletionGuard {
  site: string;
  /** The run's streams; the full company reads among them are the ones that can delete. */
  progress: readonly StreamProgress[];
  /** Companies this run loaded first (the database held none of their users). */
  firstLoads: ReadonlySet<string>;
  /** SYNC_MAX_DELETE_FRACTION. */
  maxDeleteFraction: number;
  /** SYNC_MASS_DELETE_MIN: without it, a company of 4 users could never lose one (25% > 0.2). */
  massDeleteMin: number;
  /** --allow-mass-delete. */
  allowMassDelete: boolean;
  /** The command that lets this site's deletion through (massDeleteCommand): a refusal names it. */
  rerun: string;
  /** Stored integration users are not deleted by company reads this run (MergeDeletions.deleteNonIntegrationIn). */
  integrationUsersKept: boolean;
  /** Company reads are JSON pages, read by key (not a zip export, whose records come in any order). */
  keysetReads: boolean;
  warn: (message: string) => void;
}

/** The settings that bound one deletion: SYNC_MAX_DELETE_FRACTION, SYNC_MASS_DELETE_MIN, --allow-mass-delete (and the command that gives it). */
export type DeletionLimits = Pick<DeletionGuard, 'maxDeleteFraction' | 'massDeleteMin' | 'allowMassDelete' | 'rerun'>;

/**
 * The command that lets a refused deletion through: --allow-mass-delete applies to full reads
 * only (an incremental read deletes nothing), so with --full; with --site when the configuration
 * has several sites (the others need no such run).
 */
export function massDeleteCommand(site: string, severalSites: boolean): string {
  return `cpq-sync run ${severalSites ? `--site ${site} ` : ''}--full --allow-mass-delete`;
}

/** Whether the guard refuses to delete `missing` of a company's `known` users. */
export function refusesDeletion(missing: number, known: number, guard: Omit<DeletionLimits, 'rerun'>): boolean {
  return missing > guard.massDeleteMin && missing > guard.maxDeleteFraction * known && !guard.allowMassDelete;
}

/** Why refusesDeletion refused, the end of each refusal's warning: both limits, since a deletion is refused only past both. */
export function pastDeletionLimits(guard: DeletionLimits, rerunIf = 'this is real'): string {
  return `more than SYNC_MASS_DELETE_MIN=${guard.massDeleteMin} and SYNC_MAX_DELETE_FRACTION=${guard.maxDeleteFraction} allow; nothing was marked deleted (if ${rerunIf}: ${guard.rerun})`;
}

/**
 * Companies whose users this run may mark deleted: read in full, not short, with totalResults
 * when read by key, and not losing
 * both more than SYNC_MAX_DELETE_FRACTION of their known users and more than SYNC_MASS_DELETE_MIN
 * (refusesDeletion: past one limit alone is allowed; past both, only with --allow-mass-delete).
 * Refusals are recorded in the run's warnings and the stream's report.
 */
export async function deletableCompanies(client: pg.PoolClient, runId: string, guard: DeletionGuard): Promise<string[]> {
  const full = guard.progress.filter((p) => p.id.kind === 'company' && p.report.mode === 'full');
  const eligible: string[] = [];
  for (const p of full) {
    if (p.report.shortRead) {
      p.report.deletion = 'skipped: short read';
      guard.warn(`deletion skipped for ${p.id.name}: the read was short (${p.usersRead} of ${p.report.totalResults}); nothing was marked deleted`);
    } else if (guard.keysetReads && p.report.totalResults === null) {
      // Only totalResults shows that a keyset read returned every user: where CPQ's $gt and its
      // sort disagree (a collation: sorted without case, compared by code unit), later pages
      // skip users silently, in order, and they would be marked deleted.
      p.report.deletion = 'skipped: no totalResults';
      guard.warn(
        `deletion skipped for ${p.id.name}: CPQ sent no totalResults, so the read cannot show that its pages returned every user; nothing was marked deleted`,
      );
    } else if (guard.firstLoads.has(p.id.company!)) {
      // Nothing was known, so nothing is missing: no need to scan a million users to see it.
      p.report.deletion = 'applied: none missing';
    } else eligible.push(p.id.company!);
  }
  const allowed: string[] = [];
  const scope = guard.integrationUsersKept ? 'all but integration users' : 'all users';
  // Looked up by company, not searched: a run of every company of a long list has a full read each.
  const readOf = new Map(full.map((p) => [p.id.company!, p]));
  for (const c of await countDeletionCandidates(client, guard.site, runId, eligible, scope)) {
    const p = readOf.get(c.company)!;
    if (refusesDeletion(c.missing, c.known, guard)) {
      p.report.deletion = `aborted: ${c.missing} of ${c.known} would be deleted`;
      guard.warn(
        `deletion aborted for ${p.id.name}: ${c.missing} of ${c.known} known users (${Math.round((100 * c.missing) / c.known)}%) ` +
          `are missing from the read, ${pastDeletionLimits(guard)}`,
      );
    } else {
      p.report.deletion = c.missing > 0 ? `applied: ${c.missing} deleted` : 'applied: none missing';
      allowed.push(c.company);
    }
  }
  if (guard.integrationUsersKept && allowed.length > 0) {
    const kept = (await countDeletionCandidates(client, guard.site, runId, allowed, 'integration users')).reduce((n, c) => n + c.missing, 0);
    if (kept > 0) {
      guard.warn(
        `${kept} stored integration user${kept === 1 ? ' is' : 's are'} missing from the company reads and kept: the integration feed was not read in full this run (short, or it answered 404); ` +
          'they are marked deleted by a run that reads it in full (a site that no longer has the integration endpoint: set CPQ_INTEGRATION_USERS=off)',
      );
    }
  }
  return allowed;
}

/**
 * Of `companies` (no company read covers them), those whose stored integration users a full,
 * complete integration read left out may be marked deleted: the integration feed is the only one
 * that returns them. Within the same guard as a company read's deletions.
 */
export async function integrationDeletableCompanies(
  client: pg.PoolClient,
  runId: string,
  guard: DeletionGuard,
  companies: readonly string[],
): Promise<string[]> {
  const allowed: string[] = [];
  for (const c of await countDeletionCandidates(client, guard.site, runId, companies, 'integration users')) {
    if (c.missing === 0) continue;
    if (refusesDeletion(c.missing, c.known, guard)) {
      guard.warn(
        `deletion aborted for the integration users of company ${JSON.stringify(c.company)} (no company read covers it): ${c.missing} of ${c.known} ` +
          `are missing from the integration feed, ${pastDeletionLimits(guard)}`,
      );
    } else allowed.push(c.company);
  }
  return allowed;
}

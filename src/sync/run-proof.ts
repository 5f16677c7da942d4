import type pg from 'pg';
import { lockUnnamedSites } from '../db/sql/lock-unnamed-sites.js';
import { recordCompanyCounts } from '../db/sql/record-company-counts.js';
import { redactExpired } from '../db/sql/redact-personal.js';
import { sealRun } from '../db/sql/seal-run.js';
import type { Logger } from '../logger.js';
import type { StreamProgress } from './stream-progress.js';

/**
 * The run's compliance step, in its transaction after the merge (README "Compliance:
 * completeness, tamper evidence, forgetting"): records each company's read next to what the
 * database holds (cpq.run_company_counts), redacts what HISTORY_RETENTION says has expired (in
 * this site, and in sites the configuration no longer names), and
 * seals what the run committed (cpq.run_seals), in that order, so the seal is the run's last
 * write to the audit record.
 */
export async function proveRun(
  client: pg.PoolClient,
  site: string,
  runId: string,
  progress: readonly StreamProgress[],
  /** HISTORY_RETENTION's cutoff: personal fields of what ended before it are redacted. */
  retainedFrom: Date | undefined,
  /** Every site the configuration names (the sites file's, or `default`). */
  namedSites: readonly string[],
  log: Logger,
): Promise<void> {
  const reads = progress.flatMap((p) =>
    p.id.kind === 'company' && p.id.company !== undefined
      ? [
          {
            company: p.id.company,
            mode: p.report.mode,
            totalResults: p.report.totalResults,
            received: p.report.received,
            receivedChecksum: p.logins.hex,
          },
        ]
      : [],
  );
  const started = Date.now();
  await recordCompanyCounts(client, site, runId, reads);
  const counted = Date.now();
  if (retainedFrom !== undefined) {
    const redacted = await redactExpired(client, site, retainedFrom);
    if (redacted.users + redacted.user_versions + redacted.user_change_log > 0) log.info({ redacted }, 'personal fields past HISTORY_RETENTION redacted');
    // A site no run syncs any more (removed from the sites file, renamed) would keep its deleted
    // users' personal data for ever: the retention is the database's, so runs of the sites still
    // named redact those too, when no run of theirs is going on.
    for (const other of await lockUnnamedSites(client, namedSites)) {
      const done = await redactExpired(client, other, retainedFrom);
      if (done.users + done.user_versions + done.user_change_log > 0) {
        log.info({ site: other, redacted: done }, 'personal fields past HISTORY_RETENTION redacted in a site the configuration does not name');
      }
    }
  }
  const redactedAt = Date.now();
  const chain = await sealRun(client, site, runId);
  log.debug({ chain, countsMs: counted - started, redactMs: redactedAt - counted, sealMs: Date.now() - redactedAt }, 'run sealed');
}

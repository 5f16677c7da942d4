import type pg from 'pg';
import { recordCompanyCounts } from '../db/sql/record-company-counts.js';
import { redactExpired, redactedAny } from '../db/sql/redact-personal.js';
import { sealRun } from '../db/sql/seal-run.js';
import type { Logger } from '../logger.js';
import type { StreamProgress } from './stream-progress.js';

/**
 * The run's compliance step, in its transaction after the merge (README "Compliance:
 * completeness, tamper evidence, forgetting"): records each company's read next to what the
 * database holds (cpq.run_company_counts), redacts what HISTORY_RETENTION says has expired, and
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
    const redacted = await redactExpired(client, site, retainedFrom, runId);
    if (redactedAny(redacted)) log.info({ redacted }, 'personal fields past HISTORY_RETENTION redacted');
  }
  const redactedAt = Date.now();
  const chain = await sealRun(client, site, runId);
  log.debug({ chain, countsMs: counted - started, redactMs: redactedAt - counted, sealMs: Date.now() - redactedAt }, 'run sealed');
}

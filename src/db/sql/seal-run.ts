import { sql } from 'kysely';
import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/**
 * Seals a run, in its transaction, as its last write to the audit record: the SHA-256 of what it
 * committed (cpq.run_content_sha256, migration 0012 defines it; of lines 4, migration 0040: with
 * the run's cpq.run_company_counts as 0032 added them, the nulls inside its rows' jsonb values as
 * 0033 did, and its personal keys left out by cpq.is_personal_key, folded in ASCII)
 * chained to the previous sealed run of its site. Runs of a site
 * hold its sync lock until they commit, so the previous seal is the newest committed one. Returns
 * the chain hash.
 *
 * The content hash is MATERIALIZED: the CTE is read twice below, and Postgres would otherwise
 * inline it and compute the hash twice (run_content_sha256 is STABLE), which doubled the seal.
 */
export async function sealRun(client: Queryable, site: string, runId: string): Promise<string> {
  const [row] = await runCompiled(
    client,
    sql<{ chain_sha256: string }>`
      WITH previous AS (
        SELECT run_id, chain_sha256 FROM cpq.run_seals WHERE site = ${site} ORDER BY run_id DESC LIMIT 1
      ), content AS MATERIALIZED (
        SELECT cpq.run_content_sha256(${runId}::bigint, 4::smallint) AS sha
      )
      INSERT INTO cpq.run_seals (run_id, site, previous_run_id, lines, content_sha256, chain_sha256)
      SELECT ${runId}::bigint, ${site}, p.run_id, 4, c.sha, cpq.run_chain_sha256(${site}, ${runId}::bigint, p.chain_sha256, c.sha)
      FROM content c LEFT JOIN previous p ON true
      RETURNING chain_sha256`.compile(queryBuilder),
  );
  return row!.chain_sha256;
}

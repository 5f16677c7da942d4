import type pg from 'pg';

/**
 * Marks runs still `running` as `abandoned`; returns their ids. Only for a caller holding the
 * sync lock: a run left `running` then was left by a process that died.
 */
export async function abandonDeadRuns(client: pg.PoolClient): Promise<string[]> {
  const { rows } = await client.query<{ id: string }>(
    `UPDATE cpq.sync_runs SET status = 'abandoned', finished_at = now(),
       error = coalesce(error, 'the process running it stopped before it finished; nothing it read was kept')
     WHERE status = 'running' RETURNING id`,
  );
  return rows.map((r) => r.id);
}

/**
 * An SQL condition: whether `user` (a cpq.users alias) was held by the database before this run
 * (`runId`, a placeholder). Users this run inserted before its final merge (a merge batch, a
 * direct first load) were read, not lost, and do not count as known to the deletion guard.
 * One rule for the guard's count (count-deletion-candidates) and the merge's deletions.
 */
export const knownBeforeRun = (user: string, runId: string) => `${user}.first_seen_run_id IS DISTINCT FROM ${runId}`;

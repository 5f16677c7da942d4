/*
 * The parameters the merge's steps (db/steps.ts) read by name: a merge batch's and the final
 * merge's.
 */

/** The parameters of a merge batch: the site, the run, its effective time, and the range of seq it merges. */
export const BATCH_PARAMS = ['site', 'runId', 'effectiveAt', 'afterSeq', 'toSeq'] as const;
export type BatchParam = (typeof BATCH_PARAMS)[number];
/**
 * The parameters of the final merge: the site, the run, its effective time (valid_from of the versions it
 * writes) and which users it may mark deleted (MergeDeletions).
 */
export const MERGE_PARAMS = ['site', 'runId', 'effectiveAt', 'deleteIn', 'deleteNonIntegrationIn', 'integrationDeleteIn'] as const;
export type MergeParam = (typeof MERGE_PARAMS)[number];
/** What every step that writes rows of the run may read. */
export const RUN_PARAMS = ['site', 'runId', 'effectiveAt'] as const;

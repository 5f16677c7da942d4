import type pg from 'pg';
import { countBatchUsers } from '../db/sql/count-batch-users.js';
import { countMergeActions } from '../db/sql/count-merge-actions.js';
import { readLoginsGivenToAnother } from '../db/sql/read-logins-given-to-another.js';
import { userColumns } from '../db/sql/user-columns.js';
import { runSteps } from '../db/steps.js';
import { shownName } from '../exact-json.js';
import type { Logger } from '../logger.js';
import { mergeSteps } from './merge-plan.js';
import { BATCH_STEPS } from './new-user-steps.js';
import type { Stager } from './stager.js';

/** How many of the logins given to another person a run's warning names. */
const LOGINS_NAMED = 10;

export interface MergeCounts {
  seen: number;
  inserted: number;
  updated: number;
  unchanged: number;
  deleted: number;
  restored: number;
}

/** Merges the users staged with afterSeq < seq <= toSeq that are new to the database; returns how many. */
async function mergeNewUsers(
  client: pg.PoolClient,
  { site, runId, effectiveAt, afterSeq, toSeq }: { site: string; runId: string; effectiveAt: Date; afterSeq: number; toSeq: number },
  log?: Logger,
): Promise<number> {
  await runSteps(client, BATCH_STEPS, { site, runId, effectiveAt, afterSeq, toSeq }, 'merge batch step', log);
  return countBatchUsers(client);
}

/**
 * Merge batches during a full read: every `batchUsers` staged users (SYNC_MERGE_BATCH_USERS; 0
 * for none), those new to the database are merged, queued on the run's connection behind the
 * pages staged before them, so Postgres writes them while the run reads and normalizes the next
 * pages.
 */
export class MergeBatches {
  private mergedUpTo = 0;
  /** How many users the batches inserted. */
  inserted = 0;

  constructor(
    private readonly client: pg.PoolClient,
    private readonly stager: Stager,
    private readonly site: string,
    private readonly runId: string,
    private readonly effectiveAt: () => Promise<Date>,
    private readonly batchUsers: number,
    private readonly log?: Logger,
  ) {}

  async mergeIfDue(): Promise<void> {
    if (this.batchUsers === 0 || this.stager.lastSeq - this.mergedUpTo < this.batchUsers) return;
    const [from, to] = [this.mergedUpTo, this.stager.lastSeq];
    this.mergedUpTo = to;
    await this.stager.enqueue(async () => {
      this.inserted += await mergeNewUsers(
        this.client,
        { site: this.site, runId: this.runId, effectiveAt: await this.effectiveAt(), afterSeq: from, toSeq: to },
        this.log,
      );
    });
  }
}

/** Which users the final merge marks deleted: the stored users of these that the run did not read. */
export interface MergeDeletions {
  /**
   * Companies whose users are all the run's to delete: read in full (the deletion guard allowed
   * it) while the integration feed was read in full too, or off or absent; host aliases; removed companies.
   */
  deleteIn: string[];
  /**
   * Companies read in full while the integration feed was not (short): their stored integration
   * users are kept, since a user only that feed returns is no company read's to delete.
   */
  deleteNonIntegrationIn: string[];
  /** Companies no company read covers whose integration users a full integration read left out. */
  integrationDeleteIn: string[];
}

/**
 * Merges what was staged; `deletions` says which users missing from the run are marked deleted,
 * `insertedEarlier` how many users this run inserted already (merge batches and direct loads).
 * `warn` is told how many stored logins the run found held by someone new: a person the
 * change log then shows taking over a row, whom an auditor should hear of, and many at once is
 * a site dating its users otherwise than before (README, One-feed fields).
 */
export async function mergeStaged(
  client: pg.PoolClient,
  site: string,
  runId: string,
  effectiveAt: Date,
  deletions: MergeDeletions,
  insertedEarlier: number,
  warn: (message: string) => void,
  log?: Logger,
): Promise<MergeCounts> {
  await runSteps(client, mergeSteps(await userColumns(client)), { site, runId, effectiveAt, ...deletions }, 'merge step', log);
  const actions = await countMergeActions(client);
  const count = (action: string) => actions.get(action) ?? 0;
  const taken = count('another holder');
  if (taken > 0) {
    // Named, the first of them: the change log shows each as an update of the login (review JD).
    const named = (await readLoginsGivenToAnother(client, LOGINS_NAMED)).map((l) => shownName(`${l.company_login}/${l.login}`));
    const more = taken > named.length ? `, and ${taken - named.length} more` : '';
    warn(
      `${taken} ${taken === 1 ? 'login is' : 'logins are'} now held by another user than the one stored (another dateAdded or CPQ id; no full read saw the former holder deleted): each read as a new person, keeping nothing the former holder had (${named.join(', ')}${more})`,
    );
  }
  const counts = {
    // 'batched' and 'reinsert' users are among insertedEarlier.
    inserted: insertedEarlier + count('insert'),
    updated: count('update'),
    restored: count('restore'),
    // A user whose record was only restated (see findRestatedUsers in merge-plan.ts) is an unchanged user.
    unchanged: count('unchanged') + count('restated'),
    deleted: count('delete'),
  };
  return { seen: counts.inserted + counts.updated + counts.restored + counts.unchanged, ...counts };
}

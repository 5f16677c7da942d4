import pLimit from 'p-limit';
import type pg from 'pg';
import { CopyRows, copyBytes, copyTarget, type CopyTarget, type CopyType } from '../db/copy.js';
import { USER_VALUE_COLUMN_TYPES } from '../normalize/user-fields.js';
import { groupDescribed, type UserRow } from '../normalize/user-record.js';

/**
 * The columns a user row fills after the keys of the table it goes into, in the order of its
 * values (companyLogin, login, companyName, isIntegrationUser, then `values`): staged and
 * directly loaded rows alike.
 */
export const USER_ROW_COLUMNS: readonly (readonly [name: string, type: CopyType])[] = [
  ['company_login', 'text'],
  ['login', 'text'],
  ['company_name', 'text'],
  ['is_integration_user', 'boolean'],
  ...USER_VALUE_COLUMN_TYPES.map((c) => [c.column, c.pgType] as const),
];

/** What a page's rows are copied into: the staging tables of STAGE_DDL, with their column types. */
const STAGE_USERS = copyTarget('stage_users', [
  ['seq', 'bigint'],
  ['stream', 'text'],
  ...USER_ROW_COLUMNS,
  ['has_groups', 'boolean'],
  ['has_permissions', 'boolean'],
  ['raw', 'jsonb'],
  ['content_hash', 'text'],
]);
const STAGE_USER_GROUPS = copyTarget('stage_user_groups', [
  ['seq', 'bigint'],
  ['variable_name', 'text'],
  ['label', 'text'],
  ['type', 'text'],
  ['described', 'boolean'],
]);
const STAGE_USER_PERMISSIONS = copyTarget('stage_user_permissions', [
  ['seq', 'bigint'],
  ['type', 'text'],
  ['variable_name', 'text'],
  ['name', 'text'],
  ['has_access', 'boolean'],
]);

/**
 * The COPY rows of a page, one CopyRows per table, that streams read at once fill together until
 * one of them ends its page and takes them all to be queued: every row is whole, so which COPY
 * carries it does not matter. The Stager's pages and the DirectLoad's are both this.
 */
export class SharedPage<K extends string> {
  private rows: Record<K, CopyRows> | undefined;

  constructor(private readonly targets: Record<K, CopyTarget>) {}

  /** The rows being filled, begun when the page is empty. */
  open(): Record<K, CopyRows> {
    if (this.rows === undefined) {
      const entries = Object.entries<CopyTarget>(this.targets).map(([key, target]) => [key, new CopyRows(target)]);
      this.rows = Object.fromEntries(entries) as Record<K, CopyRows>;
    }
    return this.rows;
  }

  get empty(): boolean {
    return this.rows === undefined;
  }

  /** Takes what was filled, in the order of the targets (undefined when nothing was), and leaves the page empty. */
  close(): CopyRows[] | undefined {
    const rows = this.rows;
    this.rows = undefined;
    return rows && Object.values<CopyRows>(rows);
  }
}

const STAGE_DDL = `
CREATE TEMP TABLE stage_users (
  -- indexed from the start: each merge batch reads the range of seq staged since the last one
  seq bigint PRIMARY KEY,
  stream text NOT NULL,
  company_login text NOT NULL,
  login text NOT NULL,
  company_name text,
  is_integration_user boolean NOT NULL,
  ${USER_VALUE_COLUMN_TYPES.map((c) => `${c.column} ${c.pgType}`).join(',\n  ')},
  has_groups boolean NOT NULL,
  has_permissions boolean NOT NULL,
  -- jsonb here: parsed as the pages arrive (COPY overlaps the fetch), not in the merge that follows
  raw jsonb NOT NULL,
  content_hash text NOT NULL
) ON COMMIT DROP;
-- described: the read said label and type (JSON), so a null is a cleared one; else (a CSV export, which
-- names groups only) a null keeps what a fuller read said.
CREATE TEMP TABLE stage_user_groups (seq bigint NOT NULL, variable_name text NOT NULL, label text, type text, described boolean NOT NULL) ON COMMIT DROP;
CREATE TEMP TABLE stage_user_permissions (seq bigint NOT NULL, type text NOT NULL, variable_name text NOT NULL, name text, has_access boolean) ON COMMIT DROP;
CREATE INDEX ON stage_user_groups (seq);
CREATE INDEX ON stage_user_permissions (seq);
-- The group definitions this run read, the last copy winning (merge.ts, stageGroups): written
-- into cpq.groups once, by the final merge, which versions and logs what changed.
CREATE TEMP TABLE stage_groups (variable_name text PRIMARY KEY, label text, type text, described boolean NOT NULL) ON COMMIT DROP;
`;

/**
 * Work items (a page's COPY or a merge batch) that may wait behind the one Postgres is doing
 * before `endPage` makes its caller wait: enough that reading and normalizing go on while Postgres
 * merges a batch, few enough that memory stays flat (a page of 1000 users is ~4 MB of COPY
 * bytes, held outside the JS heap; 8 items cost 50 MB more peak RSS than 4 and gained nothing).
 */
const MAX_QUEUED = 4;

/**
 * Loads normalized rows into temporary staging tables of the run's transaction with COPY.
 * The run's single connection does one thing at a time: pages from concurrent streams and the
 * merge batches the run enqueues are written in order, while the streams go on reading.
 */
export class Stager {
  /** The seq of the last row numbered (rows are numbered from 1 as they are taken). */
  private seq = 0;
  /** The seq of the last row whose COPY is queued: every row up to it is, since pages queue in seq order. */
  private queuedSeq = 0;
  /** The rows taken since the last endPage: shared by the streams, so rows are numbered and queued in one order. */
  private readonly page = new SharedPage({ users: STAGE_USERS, groups: STAGE_USER_GROUPS, permissions: STAGE_USER_PERMISSIONS });
  private readonly queue = pLimit(1);
  /** Queued work not yet awaited, oldest first. */
  private readonly pending: Promise<void>[] = [];
  private abandoned = false;

  private constructor(private readonly client: pg.PoolClient) {}

  /**
   * The seq up to which every row is queued for COPY (a merge batch queued now reads them all).
   * Rows taken but not yet queued by an endPage are past it.
   */
  get lastSeq(): number {
    return this.queuedSeq;
  }

  static async create(client: pg.PoolClient): Promise<Stager> {
    await client.query(STAGE_DDL);
    return new Stager(client);
  }

  /**
   * Numbers rows and turns them into COPY rows at once, so that a page can be normalized and
   * encoded a slice at a time (company-read.ts, SLICE); `endPage` queues them. Rows staged later
   * win over earlier copies of the same user.
   */
  take(stream: string, rows: UserRow[]): void {
    if (rows.length === 0) return;
    const page = this.page.open();
    for (const row of rows) {
      const seq = ++this.seq;
      page.users.add([seq, stream, row.companyLogin, row.login, row.companyName, row.isIntegrationUser], row.values, [
        row.groups !== undefined,
        row.accessPermissions !== undefined,
        row.raw,
        row.contentHash,
      ]);
      for (const g of row.groups ?? []) page.groups.add([seq, g.variableName, g.label, g.type, groupDescribed(row, g.variableName)]);
      for (const p of row.accessPermissions ?? []) page.permissions.add([seq, p.type, p.variableName, p.name, p.hasAccess]);
    }
  }

  /**
   * Queues the COPYs of the rows taken since the last call. Resolves once they are queued behind
   * at most MAX_QUEUED other items; a failure rejects this or a later call, or `finish`.
   */
  async endPage(): Promise<void> {
    const copies = this.page.close();
    if (copies === undefined) return;
    const upTo = this.seq;
    const queued = this.enqueueCopies(copies);
    // Queued as the call began (enqueue pushes before it waits); another stream's later page may
    // have raised the mark meanwhile, and it never goes back.
    this.queuedSeq = Math.max(this.queuedSeq, upTo);
    await queued;
  }

  /**
   * Queues COPYs of rows into their tables, written in order. The rows are bytes already
   * (CopyRows), so queued work holds no JS strings.
   */
  async enqueueCopies(copies: CopyRows[]): Promise<void> {
    const payloads = copies.map((rows) => [rows.target, rows.bytes()] as const);
    await this.enqueue(async () => {
      for (const [target, bytes] of payloads) await copyBytes(this.client, target, bytes);
    });
  }

  /** Queues work for the connection after everything staged so far; waits only while the queue is full. */
  async enqueue(work: () => Promise<void>): Promise<void> {
    const done = this.queue(async () => {
      if (!this.abandoned) await work();
    });
    // Awaited later (below or in finish); until then a failure must not count as unhandled.
    done.catch(() => undefined);
    this.pending.push(done);
    while (this.pending.length > MAX_QUEUED) await this.pending.shift();
  }

  /** Waits until everything queued is done. */
  async finish(): Promise<void> {
    // Every page's rows were queued by its endPage, before the run waited for the queue.
    if (!this.page.empty) throw new Error('Stager.finish: rows taken but not queued (endPage not called)');
    while (this.pending.length > 0) await this.pending.shift();
  }

  /**
   * For a run that failed: drops the work not started yet and waits for the one in progress, so
   * nothing reaches the connection after the rollback. Never throws.
   */
  async abandon(): Promise<void> {
    this.abandoned = true;
    this.page.close();
    await Promise.allSettled(this.pending.splice(0));
  }
}

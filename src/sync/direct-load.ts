import type pg from 'pg';
import type { Queryable } from '../db/compiled-query.js';
import type { KeyRange } from '../cpq/paging.js';
import { copyTarget } from '../db/copy.js';
import { reserveUserIds } from '../db/sql/reserve-user-ids.js';
import { stageGroups, type GroupDefinition } from '../db/sql/stage-groups.js';
import { USER_VALUE_COLUMNS } from '../normalize/user-fields.js';
import { groupDescribed, type UserRow } from '../normalize/user-record.js';
import { SharedPage, USER_ROW_COLUMNS, type Stager } from './stager.js';

const PARTY_NUMBER = USER_VALUE_COLUMNS.indexOf('party_number');
const USERS = copyTarget('cpq.users', [
  ['site', 'text'],
  ['id', 'bigint'],
  ...USER_ROW_COLUMNS,
  ['raw', 'jsonb'],
  ['content_hash', 'text'],
  ['first_seen_run_id', 'bigint'],
  ['last_changed_run_id', 'bigint'],
  ['valid_from', 'timestamptz'],
]);
const USER_GROUPS = copyTarget('cpq.user_groups', [
  ['site', 'text'],
  ['user_id', 'bigint'],
  ['group_variable_name', 'text'],
  ['added_at', 'timestamptz'],
]);
const USER_ACCESS_PERMISSIONS = copyTarget('cpq.user_access_permissions', [
  ['site', 'text'],
  ['user_id', 'bigint'],
  ['type', 'text'],
  ['variable_name', 'text'],
  ['name', 'text'],
  ['has_access', 'boolean'],
  ['valid_from', 'timestamptz'],
]);
const USER_CHANGE_LOG = copyTarget('cpq.user_change_log', [
  ['site', 'text'],
  ['run_id', 'bigint'],
  ['change', 'text'],
  ['user_id', 'bigint'],
  ['company_login', 'text'],
  ['login', 'text'],
  ['party_number', 'text'],
  ['date_modified', 'timestamptz'],
  ['detected_at', 'timestamptz'],
  ['diff', 'jsonb'],
]);
/** User ids reserved per round trip. */
const ID_BLOCK = 10_000;
/** Group definitions DirectLoad holds before staging them. */
const GROUPS_HELD = 10_000;

/**
 * The first load of a company, written straight into the final tables with COPY: no staging,
 * no merge. Only for companies the database holds no user of (so every user read is new), and
 * only while logins arrive in increasing order (as keyset pages and sorted exports deliver them,
 * so no user can be read twice). A read split into key ranges is in increasing order per range:
 * each range is followed on its own, and takes only logins inside its bounds, which no other
 * range shares. Any other row is handed back to be staged and merged: a user read again later is
 * then a 'reinsert' in the final merge, and the result is the same as if every row had been
 * staged.
 */
export class DirectLoad {
  /**
   * Per company loaded, once its first rows come, the last login written per key range (by its
   * index); a row of the range must come after it. Made when a company's rows come, not for every
   * first load at once: an empty Map costs ~215 bytes, and a first run of a long company list
   * held one per listed company before reading any.
   */
  private readonly lastLogin = new Map<string, Map<number, string>>();
  /**
   * The group definitions named by written rows, each distinct copy once, in the order last read
   * (a group defined two ways is held twice: stageGroups chooses, as the merge does, so that a
   * copy saying what the database stores is not lost to a later one); upserted into stage_groups
   * by `endPage` once GROUPS_HELD are held (a site may name a group per user: memory stays
   * bounded), and by `finish`.
   */
  private groups = new Map<string, HeldGroup>();
  /** How many copies `groups` holds, all groups together. */
  private groupCopies = 0;
  private ids: number[] = [];
  private nextIds: Promise<number[]> | undefined;
  private rowsWritten = 0;
  /** The rows taken since the last endPage, shared by the streams (every row is new and keyed apart). */
  private readonly page = new SharedPage({ users: USERS, memberships: USER_GROUPS, permissions: USER_ACCESS_PERMISSIONS, changes: USER_CHANGE_LOG });

  /** `firstLoads`: the companies to load directly, of those the database holds no user of (findFirstLoadCompanies). */
  constructor(
    private readonly client: pg.PoolClient,
    private readonly pool: Queryable,
    private readonly stager: Stager,
    private readonly site: string,
    private readonly runId: string,
    private readonly effectiveAt: () => Promise<Date>,
    private readonly firstLoads: ReadonlySet<string>,
  ) {}

  /** Whether it loads `company` (a first load): its rows skip staging. */
  loads(company: string): boolean {
    return this.firstLoads.has(company);
  }

  /** How many users it took (all of them new), each written once its page's endPage ran. */
  get written(): number {
    return this.rowsWritten;
  }

  /**
   * Takes the rows (of a page read from `range`, when the read was split) it can write, turned
   * into COPY rows at once; returns the others, to be staged. `endPage` writes what was taken.
   */
  async take(company: string, rows: UserRow[], range?: KeyRange): Promise<UserRow[]> {
    if (!this.firstLoads.has(company)) return rows;
    let ranges = this.lastLogin.get(company);
    if (ranges === undefined) this.lastLogin.set(company, (ranges = new Map<number, string>()));
    const index = range?.index ?? 0;
    let last = ranges.get(index) ?? '';
    const direct: UserRow[] = [];
    const rest: UserRow[] = [];
    for (const row of rows) {
      const inside = (range?.from === undefined || row.login >= range.from) && (range?.to === undefined || row.login < range.to);
      if (inside && row.login > last) {
        direct.push(row);
        last = row.login;
      } else rest.push(row);
    }
    ranges.set(index, last);
    if (direct.length > 0) await this.encode(direct);
    return rest;
  }

  /** Queues the COPYs of the rows taken since the last call; stages the groups held once they are many. */
  async endPage(): Promise<void> {
    const copies = this.page.close();
    if (copies) await this.stager.enqueueCopies(copies);
    if (this.groupCopies >= GROUPS_HELD) {
      // Upserted in the order taken (the client runs its queries in turn): a later copy still wins.
      const held = this.groups;
      this.groups = new Map();
      this.groupCopies = 0;
      await stageGroups(this.client, this.site, copiesOf(held));
    }
  }

  private async encode(rows: UserRow[]) {
    const ids = await this.reserveIds(rows.length);
    const at = (await this.effectiveAt()).toISOString();
    const { users, memberships, permissions, changes } = this.page.open();
    rows.forEach((row, i) => {
      const id = ids[i]!;
      users.add([this.site, id, row.companyLogin, row.login, row.companyName, row.isIntegrationUser], row.values, [
        row.raw,
        row.contentHash,
        this.runId,
        this.runId,
        at,
      ]);
      for (const g of row.groups ?? []) {
        memberships.add([this.site, id, g.variableName, at]);
        this.holdGroupCopy(g.variableName, g.label, g.type, groupDescribed(row, g.variableName));
      }
      for (const p of row.accessPermissions ?? []) permissions.add([this.site, id, p.type, p.variableName, p.name, p.hasAccess, at]);
      // An insert's diff is its first version: the cpq.user_changes view reads it from history.
      changes.add([this.site, this.runId, 'insert', id, row.companyLogin, row.login, row.values[PARTY_NUMBER], row.dateModified, at, null]);
    });
    this.rowsWritten += rows.length;
  }

  /**
   * Notes a copy of a group's definition as the last read. Most groups only ever have one, compared
   * with it without allocating; the others keep each distinct copy once, by its text, so that a
   * site sending a new label with every member costs a lookup per member, not a scan.
   */
  private holdGroupCopy(variableName: string, label: string | null, type: string | null, described: boolean): void {
    const held = this.groups.get(variableName);
    if (held !== undefined && held.last.label === label && held.last.type === type && held.last.described === described) return;
    const copy = { label, type, described };
    this.groupCopies++;
    if (held === undefined) {
      this.groups.set(variableName, { last: copy });
      return;
    }
    held.copies ??= new Map([[copyKey(held.last), held.last]]);
    const key = copyKey(copy);
    // Deleted first: a copy read again moves to the end, as the last read.
    if (held.copies.delete(key)) this.groupCopies--;
    held.copies.set(key, copy);
    held.last = copy;
  }

  /**
   * Ids from the users' identity sequence, a block at a time, the next block asked for while the
   * current one lasts. Asked on another connection of the pool, so as not to wait behind the
   * run's queued COPYs: sequence values are not transactional (a failed run leaves a gap in the
   * ids, as a failed insert does).
   */
  private async reserveIds(count: number): Promise<number[]> {
    while (this.ids.length < count) {
      // Taken before waiting: two pages waiting for the same block would both add it.
      const next = this.nextIds ?? this.fetchIds();
      this.nextIds = undefined;
      this.ids.push(...(await next));
    }
    const taken = this.ids.splice(0, count);
    if (this.ids.length < ID_BLOCK / 2 && this.nextIds === undefined) this.nextIds = this.fetchIds();
    return taken;
  }

  private fetchIds(): Promise<number[]> {
    const ids = reserveUserIds(this.pool, ID_BLOCK);
    // Awaited when needed (or by finish); a run that fails first must not crash on it.
    ids.catch(() => undefined);
    return ids;
  }

  /**
   * Notes the groups the written rows named in stage_groups, before the final merge (whose staged
   * rows then win), which writes them into cpq.groups with the rest of the run's.
   */
  async finish(): Promise<void> {
    // Every page's rows were queued by its endPage, before the run waited for the queue.
    if (!this.page.empty) throw new Error('DirectLoad.finish: rows taken but not written (endPage not called)');
    if (this.nextIds) await this.nextIds.catch(() => undefined);
    await stageGroups(this.client, this.site, copiesOf(this.groups));
  }
}

/** A group's copies held by DirectLoad: the last read, and every distinct one (in the order last read) once there are two. */
interface HeldGroup {
  last: GroupDefinition;
  copies?: Map<string, GroupDefinition>;
}

const copyKey = (copy: GroupDefinition) => JSON.stringify([copy.label, copy.type, copy.described]);

/** The held copies as stageGroups takes them: per group, in the order last read. */
function copiesOf(groups: ReadonlyMap<string, HeldGroup>): [string, GroupDefinition][] {
  const out: [string, GroupDefinition][] = [];
  for (const [name, held] of groups) for (const copy of held.copies?.values() ?? [held.last]) out.push([name, copy]);
  return out;
}

import type { ColumnType, Generated, JSONColumnType, SelectType } from 'kysely';
import { USER_VALUE_COLUMNS, type UserValueColumn, type UserValueColumnKinds } from '../normalize/user-fields.js';
import type { ALERT_FLOOD_RULE, AlertRule } from '../config.js';

/*
 * Every table and view of schema cpq as Kysely sees it (Kysely's own cpq.kysely_migration* aside),
 * with the types node-postgres returns: int8 and bigint counts as text (ids never lose digits),
 * int4 as number, timestamptz as Date, jsonb parsed. DATABASE_COLUMNS below lists the same
 * columns at run time, tied to these types by the compiler; test/schema-types.test.ts compares
 * it with information_schema of a freshly migrated database. The user value columns are derived
 * from the field list (src/cpq/user-fields.ts), so adding a CPQ field changes them here too.
 */

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** int8 comes back from pg as text, so ids never lose digits. */
type Int8 = ColumnType<string, string | number | bigint, string | number | bigint>;
export type { Int8 };
type Json<T extends object | null> = JSONColumnType<T>;
/** A column the database fills (a trigger), never written by a query. */
type Filled<T> = ColumnType<T, never, never>;
/** A view: read, never written. */
type View<T> = { [K in keyof T]: ColumnType<SelectType<T[K]>, never, never> };

/** A change's diff: `{"field": {"old": ..., "new": ...}}`, memberships as `{"groups": {"added": [...], "removed": [...]}}`. */
export type Diff = Record<string, unknown>;

export interface SyncRunsTable {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  id: ColumnType<string, never, never>;
  started_at: Generated<Timestamp>;
  finished_at: Timestamp | null;
  /** When the versions the run wrote start (their valid_from); set when it succeeds. */
  effective_at: Timestamp | null;
  status: 'running' | 'succeeded' | 'failed' | 'interrupted' | 'abandoned';
  mode: 'full' | 'incremental' | 'mixed';
  pages: Generated<number>;
  users_seen: Generated<number>;
  users_inserted: Generated<number>;
  users_updated: Generated<number>;
  users_unchanged: Generated<number>;
  users_deleted: Generated<number>;
  users_restored: Generated<number>;
  http_requests: Generated<number>;
  http_retries: Json<Record<string, number>>;
  streams: Json<StreamReport[]>;
  warnings: Json<string[]>;
  error: string | null;
  /** 1, 2, 3, ... in the order successful runs committed (migration 0009's trigger numbers them). */
  commit_seq: Filled<string | null>;
  committed_at: Filled<Date | null>;
  /**
   * The greatest commit_seq committed when the run record was opened (migration 0044's default):
   * where `changes --since` of a run that did not commit starts. Null for runs recorded before it.
   */
  commit_seq_at_start: Filled<string | null>;
  /**
   * How far the run has come (migration 0031): written while it runs (cpq.write_run_progress), and
   * at its end as it stood then; null for a run that wrote none (an older release's, or one that
   * ended before its reads began).
   */
  progress: ColumnType<RunProgressReport | null, string | undefined, string>;
  /** When `progress` was written, by the database's clock. */
  progress_at: ColumnType<Date | null, never, Date | string>;
}

/** What a run is doing: reading CPQ, merging what it read, sealing the run, waiting to commit. */
export type RunPhase = 'reading' | 'merging' | 'sealing' | 'committing';

/** A run's progress as cpq.sync_runs.progress holds it (see src/sync/run-progress.ts). */
export interface RunProgressReport {
  phase: RunPhase;
  /** Pages read, of every stream started so far. */
  pages: number;
  /** Users received (records, a repeat counted twice), of every stream started so far. */
  received: number;
  /** The sum of the totalResults CPQ reported for the streams started so far; null when none has reported one yet. */
  totalResults: number | null;
  /** Streams whose read has ended. */
  streamsDone: number;
  /** Streams the run reads in all; null until the company list is read (CPQ_COMPANIES=*). */
  streams: number | null;
}

export interface StreamReport {
  stream: string;
  mode: 'full' | 'incremental';
  since: string | null;
  pages: number;
  received: number;
  totalResults: number | null;
  shortRead: boolean;
  /**
   * How many key ranges the read was split into and read at once (src/cpq/paging.ts keysetPages);
   * null when it was read as one range (not split, or its probed boundaries were not trusted).
   * Absent from the records of runs made before it was reported.
   */
  keyRanges: number | null;
  /** For full company reads: whether missing users were marked deleted, or why not. */
  deletion?: string;
}

export interface SyncStateTable {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  stream: string;
  cursor: Timestamp | null;
  last_full_sync_at: Timestamp | null;
  last_run_id: Int8 | null;
  updated_at: Generated<Timestamp>;
}

/** The TypeScript type of each kind of user value column (src/normalize/user-fields.ts). */
interface UserValueTypes {
  text: string;
  boolean: boolean;
  bigint: Int8;
  timestamp: Timestamp;
  choiceText: string;
  choiceInt: number;
  displayText: string;
}

/** One column per CPQ user field (two for a choice: value and display value). */
export type UserValueColumns = { [C in UserValueColumn]: UserValueTypes[UserValueColumnKinds[C]] | null };

/** The columns of one version of a user: cpq.users, cpq.user_versions and cpq.user_history all have them. */
export type UserVersionColumns = UserValueColumns & {
  /** The CPQ site the user belongs to. */
  site: string;
  id: Int8;
  company_login: string;
  login: string;
  company_name: string | null;
  is_integration_user: boolean;
  /** The record as received (merged when a user came from both feeds), numbers exact. */
  raw: Json<Record<string, unknown>>;
  content_hash: string;
  first_seen_at: Timestamp;
  last_synced_at: Timestamp;
  last_changed_at: Timestamp;
  first_seen_run_id: Int8 | null;
  last_changed_run_id: Int8 | null;
  deleted_at: Timestamp | null;
  valid_from: Timestamp;
};

type DefaultedUserColumns = 'id' | 'is_integration_user' | 'first_seen_at' | 'last_synced_at' | 'last_changed_at' | 'valid_from';
export type UsersTable = Omit<UserVersionColumns, DefaultedUserColumns> & {
  id: Generated<Int8>;
  is_integration_user: Generated<boolean>;
  first_seen_at: Generated<Timestamp>;
  last_synced_at: Generated<Timestamp>;
  last_changed_at: Generated<Timestamp>;
  valid_from: Generated<Timestamp>;
};

/** What ends a version in the history tables: when, by which run, and the version's own id. */
interface Ended {
  valid_to: Timestamp;
  ended_by_run_id: Int8;
  version_id: Generated<Int8>;
}

export type UserVersionsTable = UserVersionColumns & Ended;

export interface GroupsTable {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  variable_name: string;
  label: string | null;
  type: string | null;
  first_seen_at: Generated<Timestamp>;
  last_synced_at: Generated<Timestamp>;
  valid_from: Generated<Timestamp>;
}

export interface GroupVersionsTable extends Ended {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  variable_name: string;
  label: string | null;
  type: string | null;
  first_seen_at: Timestamp;
  last_synced_at: Timestamp;
  valid_from: Timestamp;
}

export interface GroupChangesTable {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  id: Generated<Int8>;
  run_id: Int8;
  change: 'insert' | 'update';
  group_variable_name: string;
  detected_at: Timestamp;
  diff: Json<Diff>;
}

export interface UserGroupsTable {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  user_id: Int8;
  group_variable_name: string;
  added_at: Generated<Timestamp>;
}

/** Per integration user, the fields each feed's record had at its last read (migration 0035): what a read of one feed keeps of the other's. */
export interface UserFeedFieldsTable {
  user_id: Int8;
  site: string;
  /** Top-level field names: canonical for known fields, as sent for the others; null where not known. */
  company_fields: string[] | null;
  integration_fields: string[] | null;
}

/** Of a login's current holder, the dateAdded and CPQ id a read last sent where the user's row holds null (migration 0036; last-known-identity.ts). */
export interface UserKnownIdentityTable {
  user_id: Int8;
  site: string;
  date_added: Timestamp | null;
  cpq_id: Int8 | null;
}

export interface UserGroupVersionsTable extends Ended {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  user_id: Int8;
  group_variable_name: string;
  added_at: Timestamp;
}

export interface UserAccessPermissionsTable {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  user_id: Int8;
  type: string;
  variable_name: string;
  name: string | null;
  has_access: boolean | null;
  valid_from: Generated<Timestamp>;
}

export interface UserAccessPermissionVersionsTable extends Ended {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  user_id: Int8;
  type: string;
  variable_name: string;
  name: string | null;
  has_access: boolean | null;
  valid_from: Timestamp;
}

/** An alert on privileged access (migration 0011): written by the run that saw the change, delivered after its commit. */
/** An alert's status in the outbox (migration 0045 added suppressed). */
export type AlertStatus = 'pending' | 'delivered' | 'failed' | 'suppressed';

export interface AlertOutboxTable {
  id: ColumnType<string, never, never>;
  site: ColumnType<string, string | undefined, string>;
  run_id: Int8;
  /** Null for the summary of a run over ALERT_MAX_PER_RUN (rule alert_flood) alone, which is about no user (migration 0045). */
  user_id: ColumnType<string | null, string | number | bigint | null, string | number | bigint | null>;
  company_login: string | null;
  login: string | null;
  /** The CHECK of migration 0045 allows these (test/schema-types.test.ts). */
  rule: AlertRule | typeof ALERT_FLOOD_RULE;
  subject: string;
  /** jsonb: a flag's value, a permission's {name, hasAccess}, a time; null where there was none. */
  old_value: ColumnType<unknown, string | null, string | null>;
  new_value: ColumnType<unknown, string | null, string | null>;
  detected_at: Timestamp;
  idempotency_key: string;
  /** suppressed: past the run's ALERT_MAX_PER_RUN, kept and never sent (migration 0045). */
  status: ColumnType<AlertStatus, AlertStatus | undefined, AlertStatus>;
  attempts: ColumnType<number, number | undefined, number>;
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  last_attempt_at: Timestamp | null;
  delivered_at: Timestamp | null;
  last_error: string | null;
  created_at: ColumnType<Date, Date | string | undefined, never>;
  /** The lease of the delivery pass that took it (claimDueAlerts), null once recorded or given back (migration 0046). */
  claimed_until: Timestamp | null;
}

/** Per run and company: CPQ's count, the records received and the users active after the merge, with login checksums (migration 0012). */
export interface RunCompanyCountsTable {
  run_id: Int8;
  company_login: string;
  site: string;
  mode: 'full' | 'incremental';
  total_results: Int8 | null;
  received: Int8;
  /** 16 hex digits: cpq.login_checksum of the logins received. */
  received_checksum: string;
  active_rows: Int8;
  active_checksum: string;
  /** table: counted in cpq.users; change_log: the previous record carried forward by this run's inserts, restores and deletions. */
  active_source: 'table' | 'change_log';
}

/** Per successful run: SHA-256 of what it committed, chained to the previous sealed run of its site (migration 0012). */
export interface RunSealsTable {
  run_id: Int8;
  site: string;
  previous_run_id: Int8 | null;
  content_sha256: string;
  chain_sha256: string;
  sealed_at: Generated<Timestamp>;
  /**
   * Which lines content_sha256 covers: 1, migrations 0012-0014's; 2, with the run's
   * cpq.run_company_counts (migration 0032); 3, with the nulls inside its rows' jsonb values too (0033);
   * 4, its personal keys named in ASCII, whatever the database's locale (0040).
   */
  lines: Generated<1 | 2 | 3 | 4>;
}

/** Locked (EXCLUSIVE) while a run takes its commit_seq (migration 0017); holds no data. */
export interface CommitOrderTable {
  only_row: Generated<boolean>;
}

/** Per site: the HISTORY_RETENTION cutoff already redacted. */
export interface RetentionStateTable {
  site: string;
  redacted_before: Timestamp;
  updated_at: Generated<Timestamp>;
}

/** One row per `cpq-sync forget`: who, when, why, and the rows redacted by table. */
export interface ErasuresTable {
  id: ColumnType<string, never, never>;
  site: string;
  company_login: string;
  login: string;
  user_id: Int8;
  reason: string;
  requested_by: string;
  database_role: Generated<string>;
  erased_at: Generated<Timestamp>;
  rows_redacted: Json<Record<string, number>>;
}

/** The change log as stored: an insert's diff is NULL (cpq.user_changes fills it in from history). */
export interface UserChangeLogTable {
  /** The CPQ site the row came from (CPQ_SITES_FILE; `default` for the environment's site). */
  site: string;
  id: Generated<Int8>;
  run_id: Int8;
  change: 'insert' | 'update' | 'delete' | 'restore';
  user_id: Int8;
  company_login: string;
  login: string;
  party_number: string | null;
  date_modified: Timestamp | null;
  detected_at: Timestamp;
  diff: Json<Diff> | null;
}

interface UserChangeRow {
  site: string;
  id: string;
  run_id: string;
  change: 'insert' | 'update' | 'delete' | 'restore';
  user_id: string;
  company_login: string;
  login: string;
  party_number: string | null;
  date_modified: Date | null;
  detected_at: Date;
  diff: Diff;
}

/** One row per site a run has synced: the number its sync lock is keyed by. */
export interface SitesTable {
  name: string;
  lock_id: ColumnType<number, never, never>;
  created_at: Generated<Timestamp>;
  /** Where the site's rows were read from (migration 0021); null until its first successful run of a release that records it. */
  cpq_url: string | null;
}

/** A scheduled tick of a site that one `schedule` process claimed (so it runs once). */
export interface ScheduledTicksTable {
  site: string;
  due_at: Timestamp;
  claimed_by: string;
  claimed_at: Generated<Timestamp>;
}

export interface Database {
  'cpq.sites': SitesTable;
  'cpq.scheduled_ticks': ScheduledTicksTable;
  'cpq.sync_runs': SyncRunsTable;
  'cpq.sync_state': SyncStateTable;
  'cpq.users': UsersTable;
  'cpq.user_versions': UserVersionsTable;
  'cpq.groups': GroupsTable;
  'cpq.group_versions': GroupVersionsTable;
  'cpq.group_changes': GroupChangesTable;
  'cpq.user_groups': UserGroupsTable;
  'cpq.user_feed_fields': UserFeedFieldsTable;
  'cpq.user_known_identity': UserKnownIdentityTable;
  'cpq.user_group_versions': UserGroupVersionsTable;
  'cpq.user_access_permissions': UserAccessPermissionsTable;
  'cpq.user_access_permission_versions': UserAccessPermissionVersionsTable;
  'cpq.user_change_log': UserChangeLogTable;
  'cpq.alert_outbox': AlertOutboxTable;
  'cpq.run_company_counts': RunCompanyCountsTable;
  'cpq.run_seals': RunSealsTable;
  'cpq.retention_state': RetentionStateTable;
  'cpq.erasures': ErasuresTable;
  'cpq.commit_order': CommitOrderTable;

  // Views (README "Reporting views" and "Change log, deletions and history").
  'cpq.user_changes': View<UserChangeRow>;
  'cpq.recent_changes': View<UserChangeRow & { days_ago: number }>;
  'cpq.user_changes_flat': View<
    Omit<UserChangeRow, 'id' | 'diff'> & {
      change_id: string;
      field: string;
      old_value: unknown;
      new_value: unknown;
      added: unknown;
      removed: unknown;
      changed: unknown;
    }
  >;
  'cpq.user_history': View<UserVersionColumns & { valid_to: Date | null }>;
  'cpq.user_group_history': View<{ site: string; user_id: string; group_variable_name: string; valid_from: Date; valid_to: Date | null }>;
  'cpq.user_access_permission_history': View<{
    site: string;
    user_id: string;
    type: string;
    variable_name: string;
    name: string | null;
    has_access: boolean | null;
    valid_from: Date;
    valid_to: Date | null;
  }>;
  'cpq.group_history': View<{ site: string; variable_name: string; label: string | null; type: string | null; valid_from: Date; valid_to: Date | null }>;
  'cpq.active_users_by_company': View<{ site: string; company_login: string; type: string | null; type_display: string | null; users: string }>;
  'cpq.group_members': View<{
    site: string;
    group_variable_name: string;
    group_label: string | null;
    group_type: string | null;
    user_id: string;
    company_login: string;
    login: string;
    email: string | null;
    status_display: string | null;
  }>;
  'cpq.users_per_group': View<{ site: string; group_variable_name: string; group_label: string | null; group_type: string | null; users: string }>;
  'cpq.administrators': View<{
    site: string;
    user_id: string;
    company_login: string;
    login: string;
    email: string | null;
    status_display: string | null;
    is_user_admin: boolean;
    is_access_admin: boolean;
    is_application_admin: boolean;
    administrator_groups: string[];
    is_proxy: boolean;
  }>;
  'cpq.integration_users': View<{
    site: string;
    user_id: string;
    company_login: string;
    login: string;
    party_id: string | null;
    party_number: string | null;
    oauth_client_id: string | null;
    status_display: string | null;
    last_login: Date | null;
    date_modified: Date | null;
  }>;
  'cpq.user_logins': View<{
    site: string;
    user_id: string;
    company_login: string;
    login: string;
    email: string | null;
    status_display: string | null;
    last_login: Date | null;
    never_logged_in: boolean;
    days_since_login: number | null;
  }>;
}

/**
 * The column names of `Columns`, each exactly once: a name missing from the list, or one that is
 * not a column, does not compile. So the runtime list below cannot drift from the types above.
 */
function columns<Columns>() {
  return <const Names extends readonly (keyof Columns & string)[]>(
    ...names: Names & (Exclude<keyof Columns, Names[number]> extends never ? unknown : { missing: Exclude<keyof Columns, Names[number]> })
  ): readonly string[] => names;
}

const USER_VALUES = USER_VALUE_COLUMNS as readonly UserValueColumn[];
const USER_VERSION = [
  'site',
  'id',
  'company_login',
  'login',
  'company_name',
  'is_integration_user',
  'raw',
  'content_hash',
  'first_seen_at',
  'last_synced_at',
  'last_changed_at',
  'first_seen_run_id',
  'last_changed_run_id',
  'deleted_at',
  'valid_from',
] as const;
const CHANGE = ['site', 'run_id', 'change', 'user_id', 'company_login', 'login', 'party_number', 'date_modified', 'detected_at'] as const;
const ENDED = ['valid_to', 'ended_by_run_id', 'version_id'] as const;

/** Every column of every table and view in `Database`, by table (test/schema-types.test.ts compares it with the database). */
export const DATABASE_COLUMNS: { readonly [Table in keyof Database]: readonly string[] } = {
  'cpq.sites': columns<SitesTable>()('name', 'lock_id', 'created_at', 'cpq_url'),
  'cpq.scheduled_ticks': columns<ScheduledTicksTable>()('site', 'due_at', 'claimed_by', 'claimed_at'),
  'cpq.sync_runs': columns<SyncRunsTable>()(
    'site',
    'id',
    'started_at',
    'finished_at',
    'effective_at',
    'status',
    'mode',
    'pages',
    'users_seen',
    'users_inserted',
    'users_updated',
    'users_unchanged',
    'users_deleted',
    'users_restored',
    'http_requests',
    'http_retries',
    'streams',
    'warnings',
    'error',
    'commit_seq',
    'committed_at',
    'commit_seq_at_start',
    'progress',
    'progress_at',
  ),
  'cpq.sync_state': columns<SyncStateTable>()('site', 'stream', 'cursor', 'last_full_sync_at', 'last_run_id', 'updated_at'),
  'cpq.users': columns<UsersTable>()(...USER_VERSION, ...USER_VALUES),
  'cpq.user_versions': columns<UserVersionsTable>()(...USER_VERSION, ...USER_VALUES, ...ENDED),
  'cpq.groups': columns<GroupsTable>()('site', 'variable_name', 'label', 'type', 'first_seen_at', 'last_synced_at', 'valid_from'),
  'cpq.group_versions': columns<GroupVersionsTable>()('site', 'variable_name', 'label', 'type', 'first_seen_at', 'last_synced_at', 'valid_from', ...ENDED),
  'cpq.group_changes': columns<GroupChangesTable>()('site', 'id', 'run_id', 'change', 'group_variable_name', 'detected_at', 'diff'),
  'cpq.user_groups': columns<UserGroupsTable>()('site', 'user_id', 'group_variable_name', 'added_at'),
  'cpq.user_feed_fields': columns<UserFeedFieldsTable>()('user_id', 'site', 'company_fields', 'integration_fields'),
  'cpq.user_known_identity': columns<UserKnownIdentityTable>()('user_id', 'site', 'date_added', 'cpq_id'),
  'cpq.user_group_versions': columns<UserGroupVersionsTable>()('site', 'user_id', 'group_variable_name', 'added_at', ...ENDED),
  'cpq.user_access_permissions': columns<UserAccessPermissionsTable>()('site', 'user_id', 'type', 'variable_name', 'name', 'has_access', 'valid_from'),
  'cpq.user_access_permission_versions': columns<UserAccessPermissionVersionsTable>()(
    'site',
    'user_id',
    'type',
    'variable_name',
    'name',
    'has_access',
    'valid_from',
    ...ENDED,
  ),
  'cpq.user_change_log': columns<UserChangeLogTable>()('id', ...CHANGE, 'diff'),
  'cpq.run_company_counts': columns<RunCompanyCountsTable>()(
    'run_id',
    'company_login',
    'site',
    'mode',
    'total_results',
    'received',
    'received_checksum',
    'active_rows',
    'active_checksum',
    'active_source',
  ),
  'cpq.run_seals': columns<RunSealsTable>()('run_id', 'site', 'previous_run_id', 'content_sha256', 'chain_sha256', 'sealed_at', 'lines'),
  'cpq.retention_state': columns<RetentionStateTable>()('site', 'redacted_before', 'updated_at'),
  'cpq.commit_order': columns<CommitOrderTable>()('only_row'),
  'cpq.erasures': columns<ErasuresTable>()(
    'id',
    'site',
    'company_login',
    'login',
    'user_id',
    'reason',
    'requested_by',
    'database_role',
    'erased_at',
    'rows_redacted',
  ),
  'cpq.alert_outbox': columns<AlertOutboxTable>()(
    'id',
    'site',
    'run_id',
    'user_id',
    'company_login',
    'login',
    'rule',
    'subject',
    'old_value',
    'new_value',
    'detected_at',
    'idempotency_key',
    'status',
    'attempts',
    'next_attempt_at',
    'last_attempt_at',
    'delivered_at',
    'last_error',
    'created_at',
    'claimed_until',
  ),
  'cpq.user_changes': columns<Database['cpq.user_changes']>()('id', ...CHANGE, 'diff'),
  'cpq.recent_changes': columns<Database['cpq.recent_changes']>()('id', ...CHANGE, 'diff', 'days_ago'),
  'cpq.user_changes_flat': columns<Database['cpq.user_changes_flat']>()(
    'change_id',
    ...CHANGE,
    'field',
    'old_value',
    'new_value',
    'added',
    'removed',
    'changed',
  ),
  'cpq.user_history': columns<Database['cpq.user_history']>()(...USER_VERSION, ...USER_VALUES, 'valid_to'),
  'cpq.user_group_history': columns<Database['cpq.user_group_history']>()('site', 'user_id', 'group_variable_name', 'valid_from', 'valid_to'),
  'cpq.user_access_permission_history': columns<Database['cpq.user_access_permission_history']>()(
    'site',
    'user_id',
    'type',
    'variable_name',
    'name',
    'has_access',
    'valid_from',
    'valid_to',
  ),
  'cpq.group_history': columns<Database['cpq.group_history']>()('site', 'variable_name', 'label', 'type', 'valid_from', 'valid_to'),
  'cpq.active_users_by_company': columns<Database['cpq.active_users_by_company']>()('site', 'company_login', 'type', 'type_display', 'users'),
  'cpq.group_members': columns<Database['cpq.group_members']>()(
    'site',
    'group_variable_name',
    'group_label',
    'group_type',
    'user_id',
    'company_login',
    'login',
    'email',
    'status_display',
  ),
  'cpq.users_per_group': columns<Database['cpq.users_per_group']>()('site', 'group_variable_name', 'group_label', 'group_type', 'users'),
  'cpq.administrators': columns<Database['cpq.administrators']>()(
    'site',
    'user_id',
    'company_login',
    'login',
    'email',
    'status_display',
    'is_user_admin',
    'is_access_admin',
    'is_application_admin',
    'administrator_groups',
    'is_proxy',
  ),
  'cpq.integration_users': columns<Database['cpq.integration_users']>()(
    'site',
    'user_id',
    'company_login',
    'login',
    'party_id',
    'party_number',
    'oauth_client_id',
    'status_display',
    'last_login',
    'date_modified',
  ),
  'cpq.user_logins': columns<Database['cpq.user_logins']>()(
    'site',
    'user_id',
    'company_login',
    'login',
    'email',
    'status_display',
    'last_login',
    'never_logged_in',
    'days_since_login',
  ),
};

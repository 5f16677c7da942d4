import type { ColumnType, Generated, JSONColumnType } from 'kysely';

type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** int8 comes back from pg as text, so ids never lose digits. */
type Int8 = ColumnType<string, string | number | bigint, string | number | bigint>;
export type { Int8 };

export interface SyncRunsTable {
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
  http_requests: Generated<number>;
  http_retries: JSONColumnType<Record<string, number>, string, string>;
  streams: JSONColumnType<StreamReport[], string, string>;
  warnings: JSONColumnType<string[], string, string>;
  error: string | null;
}

export interface StreamReport {
  stream: string;
  mode: 'full' | 'incremental';
  since: string | null;
  pages: number;
  received: number;
  totalResults: number | null;
  shortRead: boolean;
  /** For full company reads: whether missing users were marked deleted, or why not. */
  deletion?: string;
}

export interface SyncStateTable {
  stream: string;
  cursor: Timestamp | null;
  last_full_sync_at: Timestamp | null;
  last_run_id: Int8 | null;
  updated_at: Generated<Timestamp>;
}

/** The columns queries in this code base use; cpq.users has one typed column per CPQ field besides. */
export interface UsersTable {
  id: Generated<Int8>;
  company_login: string;
  login: string;
  party_id: Int8 | null;
  party_number: string | null;
  cpq_id: Int8 | null;
  first_name: string | null;
  last_name: string | null;
  email: string | null;
  is_user_admin_perm_enabled: boolean | null;
  is_web_services_only: boolean | null;
  status: number | null;
  status_display: string | null;
  type: string | null;
  type_display: string | null;
  date_modified: Timestamp | null;
  last_login: Timestamp | null;
  company_name: string | null;
  is_integration_user: boolean;
  oauth_client_id: string | null;
  raw: JSONColumnType<Record<string, unknown>, string, string>;
  content_hash: string;
  first_seen_at: Generated<Timestamp>;
  last_synced_at: Generated<Timestamp>;
  last_changed_at: Generated<Timestamp>;
  deleted_at: Timestamp | null;
}

export interface GroupsTable {
  variable_name: string;
  label: string | null;
  type: string | null;
}

export interface UserGroupsTable {
  user_id: Int8;
  group_variable_name: string;
}

export interface UserAccessPermissionsTable {
  user_id: Int8;
  type: string;
  variable_name: string;
  name: string | null;
  has_access: boolean | null;
}

export interface Database {
  'cpq.sync_runs': SyncRunsTable;
  'cpq.sync_state': SyncStateTable;
  'cpq.users': UsersTable;
  'cpq.groups': GroupsTable;
  'cpq.user_groups': UserGroupsTable;
  'cpq.user_access_permissions': UserAccessPermissionsTable;
}

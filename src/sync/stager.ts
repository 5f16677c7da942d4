import pLimit from 'p-limit';
import type pg from 'pg';
import { copyLine, copyRows } from '../db/copy.js';
import { USER_VALUE_COLUMN_TYPES } from '../normalize/user-fields.js';
import type { UserRow } from '../normalize/user-record.js';

const VALUE_COLUMNS = USER_VALUE_COLUMN_TYPES.map((c) => c.column);

/** Columns of stage_users after seq and stream, in COPY order. */
export const STAGE_USER_COLUMNS = [
  'company_login',
  'login',
  'company_name',
  'is_integration_user',
  ...VALUE_COLUMNS,
  'has_groups',
  'has_permissions',
  'raw',
  'content_hash',
];

const STAGE_DDL = `
CREATE TEMP TABLE stage_users (
  seq bigint NOT NULL,
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
CREATE TEMP TABLE stage_user_groups (seq bigint NOT NULL, variable_name text NOT NULL, label text, type text) ON COMMIT DROP;
CREATE TEMP TABLE stage_user_permissions (seq bigint NOT NULL, type text NOT NULL, variable_name text NOT NULL, name text, has_access boolean) ON COMMIT DROP;
`;

/**
 * Loads normalized rows into temporary staging tables of the run's transaction with COPY.
 * Pages from concurrent streams are written one at a time on the run's single connection.
 */
export class Stager {
  private seq = 0;
  private readonly queue = pLimit(1);

  private constructor(private readonly client: pg.PoolClient) {}

  static async create(client: pg.PoolClient): Promise<Stager> {
    await client.query(STAGE_DDL);
    return new Stager(client);
  }

  /** Stages one page of rows; rows staged later win over earlier copies of the same user. */
  add(stream: string, rows: UserRow[]): Promise<void> {
    const users: string[] = [];
    const groups: string[] = [];
    const permissions: string[] = [];
    for (const row of rows) {
      const seq = String(++this.seq);
      users.push(
        copyLine([
          seq,
          stream,
          row.companyLogin,
          row.login,
          row.companyName,
          row.isIntegrationUser,
          ...row.values,
          row.groups !== undefined,
          row.accessPermissions !== undefined,
          row.raw,
          row.contentHash,
        ]),
      );
      for (const g of row.groups ?? []) groups.push(copyLine([seq, g.variableName, g.label, g.type]));
      for (const p of row.accessPermissions ?? []) permissions.push(copyLine([seq, p.type, p.variableName, p.name, p.hasAccess]));
    }
    return this.queue(async () => {
      await copyRows(this.client, `stage_users (seq, stream, ${STAGE_USER_COLUMNS.join(', ')})`, users);
      await copyRows(this.client, 'stage_user_groups (seq, variable_name, label, type)', groups);
      await copyRows(this.client, 'stage_user_permissions (seq, type, variable_name, name, has_access)', permissions);
    });
  }
}

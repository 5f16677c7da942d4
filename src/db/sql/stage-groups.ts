import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

export interface GroupDefinition {
  label: string | null;
  type: string | null;
  /** Read with its label and type (JSON): a null is a cleared one (UserRow.groupsDescribed). */
  described: boolean;
}

/**
 * The upsert of a staged group definition over an earlier copy (stage_groups): the later copy wins,
 * but a null label or type of one not described keeps the earlier.
 */
export const KEEP_UNLESS_DESCRIBED = `label = CASE WHEN excluded.described THEN excluded.label ELSE coalesce(excluded.label, stage_groups.label) END,
       type = CASE WHEN excluded.described THEN excluded.type ELSE coalesce(excluded.type, stage_groups.type) END,
       described = excluded.described OR stage_groups.described`;

/**
 * Notes group definitions (by variable name) in the run's stage_groups; a null label or type of a
 * group not described (a CSV export) keeps what is already staged.
 */
export async function stageGroups(client: pg.PoolClient, groups: ReadonlyMap<string, GroupDefinition>): Promise<void> {
  if (groups.size === 0) return;
  const names = [...groups.keys()];
  const labels = names.map((n) => groups.get(n)!.label);
  const types = names.map((n) => groups.get(n)!.type);
  const described = names.map((n) => groups.get(n)!.described);
  // stage_groups is a temporary table of the run, not in Database: the sql tag, not the builder.
  await runCompiled(
    client,
    sql`INSERT INTO stage_groups (variable_name, label, type, described)
     SELECT * FROM unnest(${names}::text[], ${labels}::text[], ${types}::text[], ${described}::boolean[])
     ON CONFLICT (variable_name) DO UPDATE SET ${sql.raw(KEEP_UNLESS_DESCRIBED)}`.compile(queryBuilder),
  );
}

import type pg from 'pg';
import { sql } from 'kysely';
import { queryBuilder, runCompiled } from '../compiled-query.js';

export interface GroupDefinition {
  label: string | null;
  type: string | null;
}

/**
 * Notes group definitions (by variable name) in the run's stage_groups; a null label or type
 * keeps what is already staged.
 */
export async function stageGroups(client: pg.PoolClient, groups: ReadonlyMap<string, GroupDefinition>): Promise<void> {
  if (groups.size === 0) return;
  const names = [...groups.keys()];
  const labels = names.map((n) => groups.get(n)!.label);
  const types = names.map((n) => groups.get(n)!.type);
  // stage_groups is a temporary table of the run, not in Database: the sql tag, not the builder.
  await runCompiled(
    client,
    sql`INSERT INTO stage_groups (variable_name, label, type)
     SELECT * FROM unnest(${names}::text[], ${labels}::text[], ${types}::text[])
     ON CONFLICT (variable_name) DO UPDATE
       SET label = coalesce(excluded.label, stage_groups.label), type = coalesce(excluded.type, stage_groups.type)`.compile(queryBuilder),
  );
}

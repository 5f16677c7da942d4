import type pg from 'pg';
import { CompiledQuery } from 'kysely';
import { runCompiled } from '../compiled-query.js';

export interface GroupDefinition {
  label: string | null;
  type: string | null;
  /** Read with its label and type (JSON): a null is a cleared one (UserRow.groupsDescribed). */
  described: boolean;
}

/**
 * The upsert of a staged group definition over an earlier copy (stage_groups): the later copy wins,
 * but a null label or type of one not described keeps the earlier; and no copy replaces one that
 * says what the database stores (KEPT_AS_STORED).
 */
export const KEEP_UNLESS_DESCRIBED = `label = CASE WHEN excluded.described THEN excluded.label ELSE coalesce(excluded.label, stage_groups.label) END,
       type = CASE WHEN excluded.described THEN excluded.type ELSE coalesce(excluded.type, stage_groups.type) END,
       described = excluded.described OR stage_groups.described`;

/**
 * The upsert's condition: the staged definition is not the one the site (`site`, SQL of the run's
 * site) stores. Companies are read in parallel: were the last copy always to win, a group defined
 * two ways (a label per company) would change with the order their reads ended, and runs reading
 * the same site would log label changes. So once a copy agrees with the database, none replaces it.
 */
export const keptAsStored = (site: string) => `NOT EXISTS (SELECT 1 FROM cpq.groups g WHERE g.site = ${site} AND g.variable_name = stage_groups.variable_name
         AND (g.label, g.type) IS NOT DISTINCT FROM (stage_groups.label, stage_groups.type))`;

/**
 * Notes group definitions (by variable name) in the run's stage_groups; a null label or type of a
 * group not described (a CSV export) keeps what is already staged.
 */
export async function stageGroups(client: pg.PoolClient, site: string, groups: ReadonlyMap<string, GroupDefinition>): Promise<void> {
  if (groups.size === 0) return;
  const names = [...groups.keys()];
  const labels = names.map((n) => groups.get(n)!.label);
  const types = names.map((n) => groups.get(n)!.type);
  const described = names.map((n) => groups.get(n)!.described);
  // stage_groups is a temporary table of the run, not in Database, and the upsert's SQL is shared
  // with the merge's steps (plain text with $n): a raw query, not the builder.
  await runCompiled(
    client,
    CompiledQuery.raw(
      `INSERT INTO stage_groups (variable_name, label, type, described)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[])
       ON CONFLICT (variable_name) DO UPDATE SET ${KEEP_UNLESS_DESCRIBED} WHERE ${keptAsStored('$5')}`,
      [names, labels, types, described, site],
    ),
  );
}

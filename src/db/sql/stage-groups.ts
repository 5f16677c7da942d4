import type pg from 'pg';
import { CompiledQuery } from 'kysely';
import { runCompiled } from '../compiled-query.js';

export interface GroupDefinition {
  label: string | null;
  type: string | null;
  /** Read with its label or type (JSON): a null is a cleared one (UserRow.groupsDescribed). */
  described: boolean;
}

/**
 * The upsert of a staged group definition over an earlier copy (stage_groups): the later copy wins,
 * but a null label or type of one not described keeps the earlier; and no copy replaces one that
 * says what the database stores (keptAsStored).
 */
export const KEEP_UNLESS_DESCRIBED = `label = CASE WHEN excluded.described THEN excluded.label ELSE coalesce(excluded.label, stage_groups.label) END,
       type = CASE WHEN excluded.described THEN excluded.type ELSE coalesce(excluded.type, stage_groups.type) END,
       described = excluded.described OR stage_groups.described`;

/**
 * The upsert's condition: the staged definition is not one that says (described: JSON, not a CSV
 * row's nulls) what the site (`site`, SQL of the run's site) stores. Companies are read in
 * parallel: were the last copy always to win, a group defined two ways (a label per company)
 * would change with the order their reads ended, and runs reading the same site would log label
 * changes. So once a copy agrees with the database, none replaces it.
 */
export const keptAsStored = (
  site: string,
) => `NOT (stage_groups.described AND EXISTS (SELECT 1 FROM cpq.groups g WHERE g.site = ${site} AND g.variable_name = stage_groups.variable_name
         AND (g.label, g.type) IS NOT DISTINCT FROM (stage_groups.label, stage_groups.type)))`;

/**
 * The order in which the copies of one group read together are preferred (an ORDER BY's terms
 * after the variable name; the first wins): one that says (described) what the site stores, then
 * one that says a label and type at all over a CSV row's nulls, then the one read last. `copy` and
 * `stored` are the aliases of the copies and of the site's cpq.groups row (LEFT JOINed), `seq` the
 * copy's place in the reading order.
 */
export const copyPreference = (copy: string, stored: string, seq: string) =>
  `(${copy}.described AND ${stored}.variable_name IS NOT NULL AND (${stored}.label, ${stored}.type) IS NOT DISTINCT FROM (${copy}.label, ${copy}.type)) DESC,
   ${copy}.described DESC, ${seq} DESC`;

/**
 * Notes group definitions in the run's stage_groups: `copies` in the order read, a group possibly
 * more than once (two companies defining it two ways), chosen between by copyPreference, then
 * upserted by keptAsStored's rule.
 */
export async function stageGroups(client: pg.PoolClient, site: string, copies: readonly (readonly [string, GroupDefinition])[]): Promise<void> {
  if (copies.length === 0) return;
  const names = copies.map(([name]) => name);
  const labels = copies.map(([, g]) => g.label);
  const types = copies.map(([, g]) => g.type);
  const described = copies.map(([, g]) => g.described);
  // stage_groups is a temporary table of the run, not in Database, and the upsert's SQL is shared
  // with the merge's steps (plain text with $n): a raw query, not the builder.
  await runCompiled(
    client,
    CompiledQuery.raw(
      `INSERT INTO stage_groups (variable_name, label, type, described)
       SELECT DISTINCT ON (n.variable_name) n.variable_name, n.label, n.type, n.described
       FROM unnest($1::text[], $2::text[], $3::text[], $4::boolean[]) WITH ORDINALITY AS n (variable_name, label, type, described, seq)
       LEFT JOIN cpq.groups s ON s.site = $5 AND s.variable_name = n.variable_name
       ORDER BY n.variable_name, ${copyPreference('n', 's', 'n.seq')}
       ON CONFLICT (variable_name) DO UPDATE SET ${KEEP_UNLESS_DESCRIBED} WHERE ${keptAsStored('$5')}`,
      [names, labels, types, described, site],
    ),
  );
}

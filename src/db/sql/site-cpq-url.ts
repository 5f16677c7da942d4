import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** The address `site`'s rows were read from (cpq.sites.cpq_url); null when no run has recorded one. */
export async function readSiteCpqUrl(on: Queryable, site: string): Promise<string | null> {
  const rows = await runCompiled(on, queryBuilder.selectFrom('cpq.sites').select('cpq_url').where('name', '=', site).compile());
  return rows[0]?.cpq_url ?? null;
}

/** Records the address `site`'s rows are read from; inside the run's transaction, so that only a run that commits records it. */
export async function recordSiteCpqUrl(on: Queryable, site: string, cpqUrl: string): Promise<void> {
  await runCompiled(on, queryBuilder.updateTable('cpq.sites').set({ cpq_url: cpqUrl }).where('name', '=', site).compile());
}

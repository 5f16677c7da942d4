import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** How many users of `site` the database holds as present (not deleted) in each of `companies` that has any. */
export async function countPresentUsers(on: Queryable, site: string, companies: readonly string[]): Promise<Map<string, number>> {
  if (companies.length === 0) return new Map();
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.users')
      .select(['company_login', (eb) => eb.fn.countAll<string>().as('n')])
      .where('site', '=', site)
      .where('company_login', 'in', companies)
      .where('deleted_at', 'is', null)
      .groupBy('company_login')
      .compile(),
  );
  return new Map(rows.map((r) => [r.company_login, Number(r.n)]));
}

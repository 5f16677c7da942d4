import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

/** How many users of `site` the database holds as present (not deleted) in each company that has any (of `companies`, when given). */
export async function countPresentUsers(on: Queryable, site: string, companies?: readonly string[]): Promise<Map<string, number>> {
  if (companies?.length === 0) return new Map();
  let query = queryBuilder
    .selectFrom('cpq.users')
    .select(['company_login', (eb) => eb.fn.countAll<string>().as('n')])
    .where('site', '=', site)
    .where('deleted_at', 'is', null);
  if (companies !== undefined) query = query.where('company_login', 'in', companies);
  const rows = await runCompiled(on, query.groupBy('company_login').compile());
  return new Map(rows.map((r) => [r.company_login, Number(r.n)]));
}

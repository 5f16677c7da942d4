import { queryBuilder, runCompiled, type Queryable } from '../compiled-query.js';

export interface PresentUsers {
  users: number;
  /** Of them, integration users. */
  integrationUsers: number;
}

/** How many users of `site` the database holds as present (not deleted) in each company that has any (of `companies`, when given). */
export async function countPresentUsers(on: Queryable, site: string, companies?: readonly string[]): Promise<Map<string, PresentUsers>> {
  if (companies?.length === 0) return new Map();
  let query = queryBuilder
    .selectFrom('cpq.users')
    .select((eb) => [
      'company_login',
      eb.fn.countAll<string>().as('n'),
      eb.fn.countAll<string>().filterWhere('is_integration_user', '=', true).as('integration'),
    ])
    .where('site', '=', site)
    .where('deleted_at', 'is', null);
  if (companies !== undefined) query = query.where('company_login', 'in', companies);
  const rows = await runCompiled(on, query.groupBy('company_login').compile());
  return new Map(rows.map((r) => [r.company_login, { users: Number(r.n), integrationUsers: Number(r.integration) }]));
}

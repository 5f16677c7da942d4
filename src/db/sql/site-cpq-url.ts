import { sql } from 'kysely';
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

/**
 * The other sites whose rows were read from `cpqUrl` and that hold present users a run of `site`
 * reads too: of `reads.companies` (every company for `*`), or integration users when it reads
 * their feed (whatever its companies).
 * A first run of `site` stores those users again, under its own name (a site renamed, say by a
 * sites file replacing the environment's settings, whose site is `default`). A probe per such site
 * along the (site, company_login, login) index.
 */
export async function readSitesHoldingUsersOf(
  on: Queryable,
  site: string,
  cpqUrl: string,
  reads: { companies: readonly string[]; integrationUsers: boolean },
): Promise<string[]> {
  const everyCompany = reads.companies.includes('*');
  const rows = await runCompiled(
    on,
    queryBuilder
      .selectFrom('cpq.sites as s')
      .select('s.name')
      .where('s.cpq_url', '=', cpqUrl)
      .where('s.name', '<>', site)
      .where((eb) =>
        eb.exists(
          eb
            .selectFrom('cpq.users as u')
            .select(sql<number>`1`.as('one'))
            .whereRef('u.site', '=', 's.name')
            .where('u.deleted_at', 'is', null)
            .where((eb) =>
              everyCompany
                ? eb.lit(true)
                : eb.or([
                    eb('u.company_login', '=', eb.fn.any(eb.val([...reads.companies]))),
                    ...(reads.integrationUsers ? [eb('u.is_integration_user', '=', true)] : []),
                  ]),
            ),
        ),
      )
      .orderBy(sql`s.name COLLATE "C"`)
      .compile(),
  );
  return rows.map((r) => r.name);
}

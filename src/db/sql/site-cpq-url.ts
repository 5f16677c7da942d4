import { sql, type RawBuilder } from 'kysely';
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

/** Another site of the database holding users a site's run reads too, and which. */
export interface SiteHoldingUsers {
  name: string;
  /** Present users, integration users aside, of the companies the run reads (every company for `*`). */
  companies: boolean;
  /** Present integration users the run reads: through their feed, or as users of its companies. */
  integrationUsers: boolean;
}

/**
 * The other sites whose rows were read from `cpqUrl` and that hold present users a run of `site`
 * reads too: of `reads.companies` (every company for `*`), or integration users, which it reads
 * through their feed (whatever its companies) or as users of its companies. A first run of `site`
 * stores those users again, under its own name (a site renamed, say by a sites file replacing the
 * environment's settings, whose site is `default`). Each probe asks for the first user in index order (ORDER BY … LIMIT 1), one per
 * site and company, along the (site, company_login, login) index or the integration users'
 * partial one: asked only whether one exists, Postgres scanned every site's users for a site that
 * held none (0.4-1.2 s at a million; review JI). With `*`, a site whose users are all deleted is
 * read through.
 */
export async function readSitesHoldingUsersOf(
  on: Queryable,
  site: string,
  cpqUrl: string,
  reads: { companies: readonly string[]; integrationUsers: boolean },
): Promise<SiteHoldingUsers[]> {
  const present = (where: RawBuilder<unknown>) =>
    sql`(SELECT u.login FROM cpq.users u WHERE u.site = s.name AND ${where} AND u.deleted_at IS NULL
         ORDER BY u.company_login, u.login LIMIT 1) IS NOT NULL`;
  const everyCompany = reads.companies.includes('*');
  const ofCompanies = (users: RawBuilder<unknown>) =>
    everyCompany
      ? present(users)
      : sql`EXISTS (SELECT 1 FROM unnest(${[...reads.companies]}::text[]) c(login) WHERE ${present(sql`${users} AND u.company_login = c.login`)})`;
  const companies = ofCompanies(sql`NOT u.is_integration_user`);
  // Read through their feed, or as users of a company the run reads (CPQ lists them there too).
  const integrationUsers = reads.integrationUsers ? present(sql`u.is_integration_user`) : ofCompanies(sql`u.is_integration_user`);
  const rows = await runCompiled(
    on,
    sql<{ name: string; companies: boolean; integration_users: boolean }>`SELECT s.name, ${companies} AS companies, ${integrationUsers} AS integration_users
     FROM cpq.sites s WHERE s.cpq_url = ${cpqUrl} AND s.name <> ${site} ORDER BY s.name COLLATE "C"`.compile(queryBuilder),
  );
  return rows.map((r) => ({ name: r.name, companies: r.companies, integrationUsers: r.integration_users })).filter((r) => r.companies || r.integrationUsers);
}

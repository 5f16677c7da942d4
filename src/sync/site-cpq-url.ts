import { siteCpqUrl, type CpqConfig } from '../config.js';
import type { Queryable } from '../db/compiled-query.js';
import { readSitesHoldingUsersOf, type SiteHoldingUsers } from '../db/sql/site-cpq-url.js';
import { SyncError } from '../errors.js';
import { integrationEnabled } from './integration-users.js';

/**
 * Throws unless a run of `site` may read `cpqUrl`: the address its rows were read from (`recorded`),
 * or none yet; or another when the operator said the site's CPQ moved (`moved`). Users are keyed by
 * company and login only, so another CPQ's would be merged into the site's rows (`otherwise`: what
 * would happen instead, said in the error).
 */
export function requireSameCpq(
  site: string,
  recorded: string | null,
  cpqUrl: string,
  moved: boolean,
  otherwise = "another CPQ's users would be merged into its rows",
): void {
  if (recorded === null || recorded === cpqUrl || moved) return;
  throw new SyncError(
    'config',
    `site ${site} was synced from ${recorded}, and its base URL and path prefix (CPQ_BASE_URL and CPQ_PATH_PREFIX, or its baseUrl and pathPrefix in CPQ_SITES_FILE) now name ${cpqUrl}: ${otherwise}. ` +
      // A typo in a base URL the site had synced from meets this refusal before any request: say it first.
      `If the new address is a mistake (a typo, a path added), correct it; if it is the same CPQ at a new address, run once with --cpq-moved (cpq-sync run --site ${site} --cpq-moved); if it is another CPQ, give it a site name of its own`,
  );
}

/**
 * What a site's first run is told (and `check`, before it) when other sites of the database
 * (`holders`) hold users it reads: it stores them again. Most often the site is one of them
 * renamed (a sites file replacing the environment's settings, whose one site is `default`), and
 * every user is stored twice; two sites of one CPQ that read other companies share only its
 * integration users, which a site reads through their feed whatever its companies, or as users
 * of a company it reads (reviews JI, JJ).
 */
export function sameUsersHeld(site: string, cpqUrl: string, holders: readonly SiteHoldingUsers[]): { problem: string; fix: string } {
  const sameCompanies = holders.filter((h) => h.companies);
  const named = (sites: readonly SiteHoldingUsers[]) => sites.map((h) => `"${h.name}"`).join(', ');
  const holds = (sites: readonly SiteHoldingUsers[]) => (sites.length === 1 ? `site ${named(sites)} already holds` : `sites ${named(sites)} already hold`);
  if (sameCompanies.length === 0) {
    return {
      problem: `site ${site} is new to this database, and ${holds(holders)} the integration users it reads (from ${cpqUrl}): its first run stores them again, under ${site}`,
      fix: `read them on one site only: integrationUsers: off (CPQ_INTEGRATION_USERS=off) on one of the two`,
    };
  }
  return {
    problem: `site ${site} is new to this database, and ${holds(sameCompanies)} users it reads (from ${cpqUrl}, some of the same companies): its first run stores them again, under ${site}, every user twice`,
    fix:
      `if ${site} is ${named(sameCompanies)} renamed (a sites file replacing the environment's settings: their site is "default"), give it that name again; ` +
      `or rename or delete the old site's rows in SQL (README: Several sites); if both are meant, give each its own companies`,
  };
}

/** sameUsersHeld of a first run of `site` reading `cpq`, from the sites the database holds; undefined when none holds its users: what the run and `check` say. */
export async function readSameUsersHeld(on: Queryable, site: string, cpq: CpqConfig): Promise<{ problem: string; fix: string } | undefined> {
  const cpqUrl = siteCpqUrl(cpq.baseUrl, cpq.pathPrefix);
  const holders = await readSitesHoldingUsersOf(on, site, cpqUrl, { companies: cpq.companies, integrationUsers: integrationEnabled(cpq) });
  return holders.length > 0 ? sameUsersHeld(site, cpqUrl, holders) : undefined;
}

import { SyncError } from '../errors.js';

/**
 * The address a site's rows are read from, as cpq.sites.cpq_url records it: the base URL's scheme,
 * host, port and path, in the form URL gives them (host in lower case, no default port, no
 * trailing slash), so that spelling the same address another way is no move.
 * CPQ_PATH_PREFIX is left out: it says where the site's REST API is, not which site it is.
 */
export function siteCpqUrl(baseUrl: string): string {
  const url = new URL(baseUrl);
  return url.origin + url.pathname.replace(/\/+$/, '');
}

/**
 * Throws unless a run of `site` may read `cpqUrl`: the address its rows were read from (`recorded`),
 * or none yet; or another when the operator said the site's CPQ moved (`moved`). Users are keyed by
 * company and login only, so another CPQ's would be merged into the site's rows.
 */
export function requireSameCpq(site: string, recorded: string | null, cpqUrl: string, moved: boolean): void {
  if (recorded === null || recorded === cpqUrl || moved) return;
  throw new SyncError(
    'config',
    `site ${site} was synced from ${recorded}, and its base URL (CPQ_BASE_URL, or its baseUrl in CPQ_SITES_FILE) now names ${cpqUrl}: another CPQ's users would be merged into its rows. ` +
      `If it is the same CPQ at a new address, run once with --cpq-moved (cpq-sync run --site ${site} --cpq-moved); if it is another CPQ, give it a site name of its own`,
  );
}

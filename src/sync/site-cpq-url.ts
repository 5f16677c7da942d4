import { SyncError } from '../errors.js';

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

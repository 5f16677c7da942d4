import { SyncError, errorMessage } from '../errors.js';
import type { CpqHttpClient } from '../cpq/http-client.js';
import { baseUrlPath, wantsRootProbe, type PathPrefix, type PrefixAnswer, type PrefixProbe, type RootProbe } from '../error-hints.js';

/** How the site answers `GET {prefix}/rest/v16/companies?limit=1`: the cheapest request every CPQ site serves. */
export function askPrefix(client: CpqHttpClient, prefix: PathPrefix): Promise<PrefixAnswer & { message?: string }> {
  return ask(client, client.url(`${prefix}/rest/v16/companies`, { limit: '1' }));
}

/** A path no CPQ site serves: a server that refuses it too refuses whatever is asked. */
const NO_SUCH_PATH = '/rest/v16/cpq-sync-no-such-resource';

async function ask(client: CpqHttpClient, url: string): Promise<PrefixAnswer & { message?: string }> {
  try {
    const response = await client.getJson(url, { allow404: true });
    return response.status === 404 ? { kind: 'missing' } : { kind: 'ok' };
  } catch (err) {
    // A refused token request says nothing of the path: only CPQ's own 401/403 does.
    if (err instanceof SyncError && err.kind === 'auth' && !/OAuth token/.test(err.message)) return { kind: 'refused', message: err.message };
    return { kind: 'error', message: errorMessage(err) };
  }
}

/** How the site answers under each path prefix, for the hint on a 404. */
export async function probePrefixes(client: CpqHttpClient): Promise<PrefixProbe> {
  return { '': await askPrefix(client, ''), '/cpq': await askPrefix(client, '/cpq') };
}

/**
 * How the root of a base URL with a path answers under each prefix, when neither answered under
 * that path: the hint says to drop the path only when the root answers. Same host, same
 * credentials: no request goes anywhere the operator did not name. `clientAt` gives a client that
 * does not retry, and both prefixes are asked at once: a root that never answers (a gateway
 * routing only its own paths) holds the failure's line for one request timeout, not four.
 */
export async function probeRoot(probe: PrefixProbe, baseUrl: string, clientAt: (baseUrl: string) => CpqHttpClient): Promise<RootProbe | undefined> {
  const withPath = baseUrlPath(baseUrl);
  if (withPath === undefined || !wantsRootProbe(probe, baseUrl)) return undefined;
  const client = clientAt(withPath.origin);
  const [plain, cpq] = await Promise.all([askPrefix(client, ''), askPrefix(client, '/cpq')]);
  // A refusal under neither prefix a success: asked once more, for a path that is nowhere, to tell a
  // site that refuses these credentials from a gateway whose own login refuses everything.
  if (plain.kind !== 'ok' && cpq.kind !== 'ok' && (plain.kind === 'refused' || cpq.kind === 'refused')) {
    const control = await ask(client, client.url(NO_SUCH_PATH));
    return { '': plain, '/cpq': cpq, refusesEveryPath: control.kind === 'refused' };
  }
  return { '': plain, '/cpq': cpq };
}

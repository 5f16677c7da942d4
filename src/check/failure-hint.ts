import type { AppConfig, CpqConfig } from '../config.js';
import { hintFor, wantsPrefixProbe } from '../error-hints.js';
import { SyncError } from '../errors.js';
import type { Logger } from '../logger.js';
import { siteKeysIn } from '../sites-file.js';
import { probePrefixes, probeRoot } from './prefix.js';
import { checkClient } from './site.js';

/** The configuration of the site a failure came from: the one its SyncError names, else the only one. */
function siteOf(err: unknown, config: AppConfig): CpqConfig | undefined {
  const named = err instanceof SyncError && err.site !== undefined ? config.sites.find((s) => s.name === err.site) : undefined;
  return named?.cpq ?? (config.sites.length === 1 ? config.sites[0]?.cpq : config.cpq);
}

/**
 * The hint for a command's failure (src/error-hints.ts). A 404 from CPQ first asks the site how
 * it answers under each path prefix, so that the hint can say which one works.
 */
export async function failureHint(err: unknown, config: AppConfig | undefined, log: Logger | undefined): Promise<string | undefined> {
  const cpq = config ? siteOf(err, config) : undefined;
  const prefixes = cpq && log && wantsPrefixProbe(err) ? await probePrefixes(checkClient(cpq, log).client) : undefined;
  const rootPrefixes =
    cpq && log && prefixes ? await probeRoot(prefixes, cpq.baseUrl, (baseUrl) => checkClient({ ...cpq, baseUrl, maxRetries: 0 }, log).client) : undefined;
  const hint = hintFor(err, { ...(cpq ? { cpq } : {}), ...(prefixes ? { prefixes } : {}), ...(rootPrefixes ? { rootPrefixes } : {}) });
  // A site of CPQ_SITES_FILE is set by its keys there, which win over the environment's variables:
  // the hint names those (pathPrefix, not CPQ_PATH_PREFIX), or an operator would edit .env to no effect.
  const site = err instanceof SyncError ? err.site : undefined;
  if (hint === undefined || config?.cpq !== undefined || site === undefined) return hint;
  return `for site ${site} in CPQ_SITES_FILE: ${siteKeysIn(hint, cpq?.authInSitesFile !== true)}`;
}

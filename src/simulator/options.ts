import { HOST_COMPANY } from './data.js';
import type { SimulatorAuth } from './auth.js';
import type { ZipExportOptions } from './zip-export.js';

export interface SimulatorOptions {
  /** Default 1; the same seed gives identical data. */
  seed?: number;
  /** Partner organizations besides '_host', named partner1, partner2, ...; default 2. */
  partnerCompanies?: number;
  /** Users per company, '_host' included (integration users come on top); default 100. */
  usersPerCompany?: number;
  /** Default 5. */
  integrationUsers?: number;
  /** Size of the group pool; default 20. */
  groups?: number;
  /** '' (classic, default) or '/cpq' (Fusion). */
  pathPrefix?: '' | '/cpq';
  /** Integration-user endpoints exist; default pathPrefix === '/cpq'. */
  fusion?: boolean;
  /** The integration-user list honours expand=groups; default true. */
  integrationListIncludesGroups?: boolean;
  /** company.loginName reported for host users; default '_host'. */
  hostLoginName?: string;
  /** Field-name drift in serialized users (and customAttr1 on a few users); default true. */
  drift?: boolean;
  /** undefined = no auth check. */
  auth?: SimulatorAuth;
  /** Clock for dateModified on edits and OAuth token expiry. */
  now?: () => Date;
  /**
   * The zip export (`Accept: application/zip` on company users) and how it is built (`{}`: one
   * users.json). Unset: the site has no zip export and answers 406, as before it was simulated.
   */
  zipExport?: ZipExportOptions;
  /**
   * Keep each successful GET response and answer the same request (URL, Host, Accept) from it
   * until the data changes. For the benchmark: a real CPQ renders pages on its own servers, so
   * rendering them here should cost the measured machine as little as possible. Memory grows
   * with what is read (about 3 KB per user per distinct page request).
   */
  cachePages?: boolean;
  /**
   * How long CPQ takes to answer an API request (the OAuth token endpoint excepted): `fixedMs`
   * for any request plus `perUserMs` for each user in a collection page, as a remote site builds
   * each user with its groups and permissions; the simulator's own work counts towards it. Faults
   * are answered at once. Unset: answered as fast as computed.
   */
  latency?: { fixedMs: number; perUserMs?: number };
  /**
   * API requests served at once; one arriving beyond it is answered 429 with Retry-After
   * (`retryAfterSeconds`, default 1), as a rate-limited site does. Unset: no limit.
   */
  maxInFlight?: number;
  retryAfterSeconds?: number;
}

export interface ResolvedOptions {
  seed: number;
  partnerCompanies: number;
  usersPerCompany: number;
  integrationUsers: number;
  groups: number;
  pathPrefix: '' | '/cpq';
  fusion: boolean;
  integrationListIncludesGroups: boolean;
  hostLoginName: string;
  drift: boolean;
  now: () => Date;
  cachePages: boolean;
  latency: { fixedMs: number; perUserMs: number };
  maxInFlight: number | undefined;
  retryAfterSeconds: number;
}

function count(value: number | undefined, fallback: number, name: string): number {
  const result = value ?? fallback;
  if (!Number.isSafeInteger(result) || result < 0) throw new Error(`${name} must be a non-negative integer`);
  return result;
}

function milliseconds(value: number | undefined, name: string): number {
  const result = value ?? 0;
  if (!Number.isFinite(result) || result < 0) throw new Error(`${name} must be a non-negative number of milliseconds`);
  return result;
}

export function resolveLatency(latency: SimulatorOptions['latency']): ResolvedOptions['latency'] {
  return { fixedMs: milliseconds(latency?.fixedMs, 'latency.fixedMs'), perUserMs: milliseconds(latency?.perUserMs, 'latency.perUserMs') };
}

export function resolveOptions(options: SimulatorOptions): ResolvedOptions {
  // Checked at run time too: a JavaScript caller is not held to the type.
  const pathPrefix: string = options.pathPrefix ?? '';
  if (pathPrefix !== '' && pathPrefix !== '/cpq') throw new Error("pathPrefix must be '' or '/cpq'");
  return {
    seed: options.seed ?? 1,
    partnerCompanies: count(options.partnerCompanies, 2, 'partnerCompanies'),
    usersPerCompany: count(options.usersPerCompany, 100, 'usersPerCompany'),
    integrationUsers: count(options.integrationUsers, 5, 'integrationUsers'),
    groups: count(options.groups, 20, 'groups'),
    pathPrefix,
    fusion: options.fusion ?? pathPrefix === '/cpq',
    integrationListIncludesGroups: options.integrationListIncludesGroups ?? true,
    hostLoginName: options.hostLoginName ?? HOST_COMPANY,
    drift: options.drift ?? true,
    now: options.now ?? (() => new Date()),
    cachePages: options.cachePages ?? false,
    latency: resolveLatency(options.latency),
    maxInFlight: options.maxInFlight === undefined ? undefined : Math.max(1, count(options.maxInFlight, 1, 'maxInFlight')),
    retryAfterSeconds: count(options.retryAfterSeconds, 1, 'retryAfterSeconds'),
  };
}

import type { CpqConfig } from '../config.js';
import { SyncError, errorMessage } from '../errors.js';
import { pathSegment, type CpqHttpClient } from './http-client.js';
import { describeValue, isJsonObject, sentString } from '../exact-json.js';
import { keysetPages, offsetPages, readCollection, type Page } from './paging.js';
import { canonicalize, fieldNameKey } from './user-fields.js';

/** One feed of user records with its own incremental cursor in cpq.sync_state. */
export interface StreamId {
  /** Key in cpq.sync_state: `companies/<login>` or `integrationUsers`. */
  name: string;
  kind: 'company' | 'integration';
  company?: string;
}

export const companyStream = (company: string): StreamId => ({ name: `companies/${company}`, kind: 'company', company });
export const INTEGRATION_STREAM: StreamId = { name: 'integrationUsers', kind: 'integration' };

const dateFilter = (since: Date | undefined) => (since ? { dateModified: { $gte: since.toISOString() } } : undefined);

/** The path of a company's users collection (pages, counts, the zip export, check). */
export const companyUsersPath = (config: CpqConfig, company: string) => `${config.pathPrefix}/rest/v16/companies/${pathSegment('company', company)}/users`;

/** Users of one company (`_host` or a partner organization login), with groups and access permissions; a large read from a slow site split into up to CPQ_KEY_RANGES key ranges. */
export function companyUserPages(client: CpqHttpClient, config: CpqConfig, company: string, since: Date | undefined): AsyncGenerator<Page> {
  return keysetPages(
    client,
    {
      path: companyUsersPath(config, company),
      query: { expand: 'groups,accessPermissions' },
      filter: dateFilter(since),
      pageSize: config.pageSize,
    },
    { keyRanges: config.keyRanges, slowerThanMs: config.splitSlowerThanMs },
  );
}

/** Integration users (Fusion sites only; the path always carries /cpq). */
export function integrationUserPages(client: CpqHttpClient, config: CpqConfig, since: Date | undefined): AsyncGenerator<Page> {
  return keysetPages(client, {
    path: '/cpq/rest/v19/integrationUsers',
    query: { expand: 'groups' },
    filter: dateFilter(since),
    pageSize: config.pageSize,
    // "Across all companies": a login is unique per company only; partyNumber is unique on the site.
    tieBreak: 'partyNumber',
  });
}

/**
 * The detail record of one integration user with its groups, and its length in characters (for the
 * bound on what a run holds of them); undefined when CPQ no longer has it.
 */
export async function integrationUserDetail(client: CpqHttpClient, partyNumber: string): Promise<{ body: unknown; chars: number } | undefined> {
  const url = client.url(`/cpq/rest/v19/integrationUsers/${pathSegment('integration user partyNumber', partyNumber)}`, { expand: 'groups' });
  const response = await client.getJson(url, { allow404: true });
  return response.status === 404 ? undefined : { body: response.body, chars: response.chars };
}

/** The site's companies as `GET /rest/v16/companies` lists them. */
export interface CompanyList {
  /** Login names of every company (the host as `_host`, whatever its own), for CPQ_COMPANIES=*. */
  logins: string[];
  /** Every login name the list gives, the host's own among them (integration users name it so: `cpq-mdb`). */
  listed: Set<string>;
  /** The host's own login names (of the entries with isHost, or CPQ_HOST_COMPANY's), which integration users may name instead of `_host`. */
  hostLogins: Set<string>;
  /** Whether the list says which company is the host: an entry marked so, or one named `_host`. */
  marksHost: boolean;
}

/**
 * What listCompanies charges each company against CPQ_MAX_PAGE_BYTES besides its login name's
 * characters. A company held costs ~50-80 bytes of heap besides its name (its string's header,
 * an entry in `logins` and in `listed`, their tables growing by doubling, the array of logins
 * returned): charged by its characters only, a list of 4-character names was bounded at 4 bytes a
 * company, and filled the image's 192 MB heap (review DD) at half the bound. Charged 32, the list
 * costs at most ~2.5 times the bound in heap, as a page of real users does (a page may cost up to 5).
 */
const HELD_PER_COMPANY = 32;

/** The companies of the site (host first as `_host`). */
export async function listCompanies(client: CpqHttpClient, config: CpqConfig): Promise<CompanyList> {
  const logins = new Set<string>();
  const listed = new Set<string>();
  const hostLogins = new Set<string>();
  // The list is held whole: bounded like a page (what holding it costs, HELD_PER_COMPANY), and
  // refused once it names a company twice (a list that says hasMore on every page, repeating
  // itself, was asked for until memory ran out). Read by offset, a repeat also means the list moved
  // while read: the companies it pushed past the offsets were never returned, and the run fails,
  // loudly, rather than go on without them.
  let held = 0;
  for await (const page of offsetPages(client, `${config.pathPrefix}/rest/v16/companies`, {}, config.pageSize)) {
    page.items.values().forEach((item, i) => {
      const record = isJsonObject(item) ? item : {};
      // Any case, as every other field name is read (isHost too): CPQ's names drift in case.
      const fields = canonicalize(record);
      const login = sentString(fields.get('loginName') ?? fields.get('login'));
      if (login === undefined || login === '') {
        throw new SyncError('data', `GET ${page.url}: company ${i} has no loginName (as text)`);
      }
      try {
        pathSegment('loginName', login);
      } catch (err) {
        throw new SyncError('data', `GET ${page.url}: company ${i}: ${errorMessage(err)}`);
      }
      if (listed.has(login)) {
        throw new SyncError(
          'data',
          `GET ${page.url}: the company list names ${describeValue(login)} twice: it moved while it was read, so companies may be missing`,
        );
      }
      const flags = new Set(hostFlags(record));
      if (flags.size > 1) {
        throw new SyncError('data', `GET ${page.url}: the company list's entry ${describeValue(login)} says isHost twice, differently; refused`);
      }
      const host = flags.has(true) || login === config.hostCompany;
      held += login.length + HELD_PER_COMPANY;
      if (held > config.maxPageBytes) {
        throw new SyncError(
          'data',
          `GET ${page.url}: the company list's ${listed.size + 1} companies take more than CPQ_MAX_PAGE_BYTES (${config.maxPageBytes}) to hold (their login names' characters and ${HELD_PER_COMPANY} a company); refused`,
        );
      }
      logins.add(host ? '_host' : login);
      listed.add(login);
      if (host) hostLogins.add(login);
    });
  }
  return { logins: [...logins], listed, hostLogins, marksHost: hostLogins.size > 0 || listed.has('_host') };
}

/**
 * What a company list entry says of being the host's, once per spelling of the key. Oracle does
 * not publish the list's field names (the 24B release notes say to read the host's login
 * defensively): `isHost` in any case, true or "true". Taken for a partner organization, the
 * host's own login would file its integration users under that name, beside their _host rows;
 * and two spellings that disagree are refused (the first one sent decided which company was the
 * host, and that company's users were never read).
 */
function hostFlags(record: Record<string, unknown>): boolean[] {
  return Object.entries(record)
    .filter(([key]) => fieldNameKey(key) === 'ishost')
    .map(([, flag]) => flag === true || (typeof flag === 'string' && flag.toLowerCase() === 'true'));
}

/** Whether CPQ no longer has `company`: its users collection answers 404. */
export async function companyGone(client: CpqHttpClient, config: CpqConfig, company: string): Promise<boolean> {
  const url = client.url(companyUsersPath(config, company), { limit: '1', offset: '0' });
  return (await client.getJson(url, { allow404: true })).status === 404;
}

/**
 * How many users CPQ holds for one company now (totalResults of a one-record page); undefined when
 * CPQ does not say. With `goneAsNone`, a company CPQ answers 404 for holds 0 (else that fails).
 */
export async function companyUserCount(client: CpqHttpClient, config: CpqConfig, company: string, goneAsNone = false): Promise<number | undefined> {
  const url = client.url(companyUsersPath(config, company), { limit: '1', offset: '0', totalResults: 'true' });
  // As a page is read (collection): a body saying totalResults twice, differently, is refused, not the last one taken.
  const response = await client.getJson(url, { allow404: goneAsNone, collection: true });
  return response.status === 404 ? 0 : readCollection(url, response.body, 1, response.records).totalResults;
}

import { lookup } from 'node:dns/promises';
import { connect as tcpConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates, type TLSSocket } from 'node:tls';
import type { CpqConfig } from '../config.js';
import { createAuthenticator, type Authenticator } from '../cpq/auth.js';
import { contentEncoding, readHead } from '../cpq/http-bodies.js';
import { CpqHttpClient } from '../cpq/http-client.js';
import { readCollection } from '../cpq/paging.js';
import { INTEGRATION_STREAM, companyUsersPath, listCompanies } from '../cpq/streams.js';
import { dispatcherFor, withDispatcher } from '../fetch-dispatcher.js';
import { canonicalize } from '../cpq/user-fields.js';
import { zipExportUrl } from '../cpq/zip-export.js';
import { authHint, describeAuth, otherPrefix, prefixHint, prefixSetting, redirectHint, retriesSpentHint, tlsHint, unreachableHint } from '../error-hints.js';
import { SyncError, errorMessage, oneLine } from '../errors.js';
import { isJsonObject } from '../exact-json.js';
import type { Logger } from '../logger.js';
import { carriesItems } from '../normalize/user-record.js';
import { integrationEnabled } from '../sync/integration-users.js';
import { askPrefix, probeRoot } from './prefix.js';
import { fail, pass, skip, warn, type StepResult } from './step.js';
import { LinkedSignal } from '../linked-signal.js';

/** Companies named in a step's line before "and N more". */
const LISTED = 10;

/** The HTTP client of a check: the run's, with at most one retry, so that a dead site is reported soon. */
export function checkClient(cpq: CpqConfig, log: Logger): { client: CpqHttpClient; auth: Authenticator } {
  const auth = createAuthenticator(cpq.auth, cpq.requestTimeoutMs, cpq.ca);
  return { client: new CpqHttpClient({ ...cpq, maxRetries: Math.min(cpq.maxRetries, 1) }, auth, log), auth };
}

/** The fix for a failed request: the hint for a certificate, a dead host, a site that kept failing or refused credentials. */
function requestFix(err: unknown, cpq: CpqConfig): string | undefined {
  const message = errorMessage(err);
  if (err instanceof SyncError && err.kind === 'auth') return authHint(cpq.auth, message);
  return tlsHint(message, cpq) ?? redirectHint(message) ?? unreachableHint(message) ?? retriesSpentHint(message);
}

const list = (names: string[]) => (names.length > LISTED ? `${names.slice(0, LISTED).join(', ')} and ${names.length - LISTED} more` : names.join(', '));

/** The codes of a TLS handshake that failed on the certificate (OpenSSL's verify errors, and the host name check). */
const CERTIFICATE_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_|ALTNAME/;

/** Opens a connection (TLS for https) and reports whether the certificate verifies against `ca` (the system's roots when undefined). */
function connectOnce(url: URL, timeoutMs: number, ca: string[] | undefined): Promise<{ authorized: boolean; error?: string; issuer?: string }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve, reject) => {
    let socket: Socket | TLSSocket;
    const done = (outcome: { authorized: boolean; error?: string; issuer?: string }) => {
      socket.destroy();
      resolve(outcome);
    };
    if (url.protocol === 'https:') {
      // Verified as every request is: a certificate that does not verify ends the handshake with
      // its reason (the error's code), reported below; no data is sent either way.
      const tls = tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}) });
      socket = tls;
      tls.once('secureConnect', () => {
        const issuer = tls.getPeerCertificate().issuer as Record<string, string | undefined> | undefined;
        const name = issuer?.CN ?? issuer?.O;
        done({ authorized: true, ...(name ? { issuer: name } : {}) });
      });
    } else {
      socket = tcpConnect({ host, port });
      socket.once('connect', () => done({ authorized: true }));
    }
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`no response within ${timeoutMs / 1000}s (ETIMEDOUT)`));
    });
    socket.once('error', (err: Error & { code?: string }) => {
      // The certificate's own failures are an answer (it does not verify, and why); anything else is a connection failure.
      if (err.code !== undefined && CERTIFICATE_ERROR.test(err.code)) done({ authorized: false, error: `${err.code} ${err.message}` });
      else reject(new Error(err.code ? `${err.code} ${err.message}` : err.message));
    });
  });
}

/** The host of CPQ_BASE_URL resolves, something listens there, and (https) its certificate verifies, and through which CAs. */
export async function checkHost(cpq: CpqConfig): Promise<StepResult> {
  const url = new URL(cpq.baseUrl);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let address: string;
  try {
    address = (await lookup(host)).address;
  } catch (err) {
    const message = `${host} does not resolve (${errorMessage(err)})`;
    return fail('host', message, unreachableHint(`ENOTFOUND ${message}`));
  }
  const resolved = address === host ? host : `${host} resolves to ${address}`;
  try {
    if (url.protocol !== 'https:') {
      await connectOnce(url, cpq.requestTimeoutMs, undefined);
      return pass('host', `${resolved}; plain http, no TLS (allowed for loopback, or by CPQ_ALLOW_INSECURE_HTTP)`);
    }
    const system = await connectOnce(url, cpq.requestTimeoutMs, undefined);
    if (system.authorized) return pass('host', `${resolved}; TLS verified by the system's CAs (issuer ${system.issuer ?? 'unnamed'})`);
    if (cpq.ca) {
      const withFile = await connectOnce(url, cpq.requestTimeoutMs, [...rootCertificates, cpq.ca]);
      if (withFile.authorized) return pass('host', `${resolved}; TLS verified by CPQ_CA_FILE (issuer ${withFile.issuer ?? 'unnamed'})`);
      return fail('host', `${resolved}; the certificate does not verify: ${withFile.error ?? 'unknown reason'}`, tlsHint(withFile.error ?? 'CERT', cpq));
    }
    return fail('host', `${resolved}; the certificate does not verify: ${system.error ?? 'unknown reason'}`, tlsHint(system.error ?? 'CERT', cpq));
  } catch (err) {
    // OpenSSL's texts end in a line break: one line, as every step's detail is.
    const message = oneLine(errorMessage(err));
    return fail('host', `${resolved}; cannot connect to port ${url.port || (url.protocol === 'https:' ? 443 : 80)} (${message})`, requestFix(err, cpq));
  }
}

/**
 * The credentials and the path prefix, from `GET {prefix}/rest/v16/companies`: a 404 asks the
 * other prefix, and when only that one answers, the prefix fails with it as the fix and the
 * remaining steps use it (so one check shows every problem). Returns the prefix that answers,
 * or undefined when the next steps cannot run.
 */
export async function checkAccess(
  client: CpqHttpClient,
  cpq: CpqConfig,
  clientAt: (baseUrl: string) => CpqHttpClient,
): Promise<{ steps: StepResult[]; prefix: CpqConfig['pathPrefix'] | undefined }> {
  const configured = cpq.pathPrefix;
  const tried = describeAuth(cpq.auth);
  const first = await askPrefix(client, configured);
  switch (first.kind) {
    case 'ok':
      return { steps: [pass('credentials', `accepted: ${tried}`), pass('path prefix', `${prefixSetting(configured)} answers`)], prefix: configured };
    case 'refused':
      return {
        steps: [
          fail('credentials', first.message ?? 'refused', authHint(cpq.auth, first.message ?? '')),
          skip('path prefix', 'not known until the credentials are accepted'),
        ],
        prefix: undefined,
      };
    case 'error': {
      // A failed token request is the credentials' failure; CPQ failing (a 5xx after its retry, no
      // answer) judged none: the step fails saying it could not tell, not as if they were refused.
      const token = /OAuth token/.test(first.message);
      return {
        steps: [
          fail(
            'credentials',
            token ? first.message : `not known: ${first.message}`,
            token ? authHint(cpq.auth, first.message) : requestFix(new Error(first.message), cpq),
          ),
          skip('path prefix', 'not known until CPQ answers'),
        ],
        prefix: undefined,
      };
    }
    case 'missing':
      break;
  }
  const other = otherPrefix(configured);
  const second = await askPrefix(client, other);
  const probe = { [configured]: first, [other]: second } as Record<CpqConfig['pathPrefix'], typeof first>;
  const prefixStep = fail(
    'path prefix',
    `GET ${client.url(`${configured}/rest/v16/companies`)} answered 404 (${prefixSetting(configured)})`,
    prefixHint(configured, probe, undefined, cpq.baseUrl, await probeRoot(probe, cpq.baseUrl, clientAt)),
  );
  if (second.kind === 'ok') return { steps: [pass('credentials', `accepted (under ${prefixSetting(other)}): ${tried}`), prefixStep], prefix: other };
  if (second.kind === 'refused') {
    return {
      steps: [fail('credentials', second.message ?? 'refused', authHint(cpq.auth, second.message ?? '')), prefixStep],
      prefix: undefined,
    };
  }
  return { steps: [skip('credentials', 'not known: no path prefix answers'), prefixStep], prefix: undefined };
}

/**
 * The company list answers, and names every company of CPQ_COMPANIES. With CPQ_COMPANIES=*, the
 * companies run would read; a run with named companies does not need the list, so its failure
 * is then only a warning. Returns the companies run would read.
 */
export async function checkCompanies(client: CpqHttpClient, cpq: CpqConfig): Promise<{ step: StepResult; companies: string[] }> {
  const all = cpq.companies.includes('*');
  let listed: string[];
  try {
    listed = (await listCompanies(client, cpq)).logins;
  } catch (err) {
    const detail = `the company list did not answer: ${errorMessage(err)}`;
    return all
      ? {
          step: fail('companies', detail, requestFix(err, cpq) ?? 'CPQ_COMPANIES=* needs the company list: name the companies in CPQ_COMPANIES instead'),
          companies: [],
        }
      : { step: warn('companies', `${detail} (not needed: CPQ_COMPANIES names the companies)`), companies: cpq.companies };
  }
  if (all) return { step: pass('companies', `${listed.length} listed, all read (CPQ_COMPANIES=*): ${list(listed)}`), companies: listed };
  const missing = cpq.companies.filter((c) => !listed.includes(c));
  if (missing.length > 0) {
    return {
      step: fail(
        'companies',
        `CPQ_COMPANIES names ${list(missing)}, which the site does not list (it lists ${listed.length}: ${list(listed)})`,
        'name companies by the loginName the site lists (the host is _host), or * for all',
      ),
      companies: cpq.companies.filter((c) => listed.includes(c)),
    };
  }
  // The default reads the host alone: a site's partner users left out, which "every user" does not say.
  const unread = listed.filter((c) => !cpq.companies.includes(c));
  if (unread.length > 0) {
    return {
      step: warn(
        'companies',
        `${listed.length} listed; CPQ_COMPANIES reads ${list(cpq.companies)}; the users of ${list(unread)} are not synced`,
        'set CPQ_COMPANIES=* to sync every company, or name each company to sync',
      ),
      companies: cpq.companies,
    };
  }
  return { step: pass('companies', `${listed.length} listed; CPQ_COMPANIES reads ${list(cpq.companies)}`), companies: cpq.companies };
}

/** Each company's users collection answers with groups and access permissions expanded: its first user and totalResults. */
export async function checkUsers(client: CpqHttpClient, cpq: CpqConfig, companies: string[]): Promise<StepResult> {
  if (companies.length === 0) return skip('users', 'no company to read');
  const counts: string[] = [];
  const unexpanded: string[] = [];
  for (const company of companies) {
    const url = client.url(companyUsersPath(cpq, company), {
      expand: 'groups,accessPermissions',
      orderby: 'login:asc',
      limit: '1',
      offset: '0',
      totalResults: 'true',
    });
    try {
      const response = await client.getJson(url, { collection: true });
      const page = readCollection(url, response.body, 1, response.records);
      counts.push(`${company} ${page.totalResults ?? '?'}`);
      const first = page.items.length > 0 ? page.items.value(0) : undefined;
      // As a run reads it: a list not sent ({"links": …} alone, or absent) leaves memberships unsynced.
      if (isJsonObject(first)) {
        const fields = canonicalize(first);
        if (!carriesItems(fields.get('groups')) || !carriesItems(fields.get('accessPermissions'))) unexpanded.push(company);
      }
    } catch (err) {
      return fail('users', errorMessage(err), requestFix(err, cpq));
    }
  }
  const detail = `users (totalResults) per company: ${list(counts)}`;
  if (unexpanded.length > 0) {
    return warn(
      'users',
      `${detail}; no groups or access permissions listed in the first user of ${list(unexpanded)}`,
      'CPQ ignored expand=groups,accessPermissions: memberships will not be synced',
    );
  }
  return pass('users', `${detail}; expand=groups,accessPermissions answers`);
}

/** The integration-user endpoint (Fusion sites), when run would read it. */
export async function checkIntegrationUsers(client: CpqHttpClient, cpq: CpqConfig): Promise<StepResult> {
  if (!integrationEnabled(cpq)) {
    return skip(
      'integration users',
      cpq.integrationUsers === 'off' ? 'not read (CPQ_INTEGRATION_USERS=off)' : 'not read: auto reads them only with CPQ_PATH_PREFIX=/cpq',
    );
  }
  const url = client.url('/cpq/rest/v19/integrationUsers', { limit: '1', totalResults: 'true' });
  try {
    const response = await client.getJson(url, { allow404: true, collection: true });
    if (response.status === 404) {
      return cpq.integrationUsers === 'on'
        ? fail(`integration users`, `GET ${url} answered 404`, 'this site has no integration users: set CPQ_INTEGRATION_USERS=auto or off')
        : warn('integration users', `GET ${url} answered 404: run will skip the feed with a warning`, 'set CPQ_INTEGRATION_USERS=off to skip it quietly');
    }
    const page = readCollection(url, response.body, 1, response.records);
    return pass('integration users', `${INTEGRATION_STREAM.name} answers: ${page.totalResults ?? '?'} (totalResults)`);
  } catch (err) {
    return fail('integration users', errorMessage(err), requestFix(err, cpq));
  }
}

/**
 * The zip export answers with a zip (its first bytes), when CPQ_EXPORT_FORMAT=zip. Only the
 * start of the body is read, into memory, and the rest cancelled: nothing is downloaded to disk.
 */
export async function checkZipExport(client: CpqHttpClient, auth: Authenticator, cpq: CpqConfig, company: string | undefined): Promise<StepResult> {
  if (cpq.exportFormat !== 'zip') return skip('zip export', 'not used (CPQ_EXPORT_FORMAT=json)');
  if (company === undefined) return skip('zip export', 'no company to read');
  const url = zipExportUrl(client, cpq, company);
  // Let go of once the answer is read (see LinkedSignal for why not AbortSignal.timeout).
  const request = new LinkedSignal(undefined, cpq.requestTimeoutMs);
  try {
    const authorization = await auth.authorization();
    const response = await fetch(
      url,
      withDispatcher(
        {
          // As a run asks for it (CpqHttpClient.downloadToFile), which refuses it encoded.
          headers: { accept: 'application/zip', 'accept-encoding': 'identity', ...(authorization ? { authorization } : {}) },
          redirect: 'manual',
          signal: request.signal,
        },
        dispatcherFor(cpq.ca, cpq.requestTimeoutMs),
      ),
    );
    const head = await readHead(response, 4, request.signal);
    if (response.status === 406 || response.status === 404) {
      return fail('zip export', `GET ${url} (Accept: application/zip) answered ${response.status}`, 'this site has no zip export: set CPQ_EXPORT_FORMAT=json');
    }
    if (!response.ok) return fail('zip export', `GET ${url} (Accept: application/zip) answered ${response.status}`);
    const encoding = contentEncoding(response);
    if (encoding !== undefined) {
      return fail(
        'zip export',
        `GET ${url} answered ${response.status} with Content-Encoding ${encoding}, though asked for as sent (Accept-Encoding: identity)`,
        'a run refuses such an export: have CPQ, or the proxy in front of it, send the export as it is, or set CPQ_EXPORT_FORMAT=json',
      );
    }
    if (head !== 'PK\u0003\u0004' && head !== 'PK\u0005\u0006') {
      return fail(
        'zip export',
        `GET ${url} answered ${response.status} (${response.headers.get('content-type') ?? 'no content type'}), not a zip archive`,
        'set CPQ_EXPORT_FORMAT=json',
      );
    }
    return pass('zip export', `${company}: the export answers with a zip archive`);
  } catch (err) {
    return fail('zip export', `GET ${url}: ${errorMessage(err instanceof Error && err.cause instanceof Error ? err.cause : err)}`, requestFix(err, cpq));
  } finally {
    request.done();
  }
}

/** Every step of one site, in order; steps that cannot run after a failure are skipped, saying why. */
export async function checkSite(cpq: CpqConfig, log: Logger): Promise<StepResult[]> {
  const later = ['credentials', 'path prefix', 'companies', 'users', 'integration users', 'zip export'];
  const host = await checkHost(cpq);
  if (host.status === 'fail') return [host, ...later.map((step) => skip(step, 'skipped: the host step failed'))];
  const { client, auth } = checkClient(cpq, log);
  const access = await checkAccess(client, cpq, (baseUrl) => checkClient({ ...cpq, baseUrl, maxRetries: 0 }, log).client);
  if (access.prefix === undefined)
    return withoutCredentials(client, [host, ...access.steps, ...later.slice(2).map((step) => skip(step, 'skipped: CPQ did not answer'))]);
  const site = { ...cpq, pathPrefix: access.prefix };
  const companies = await checkCompanies(client, site);
  return withoutCredentials(client, [
    host,
    ...access.steps,
    companies.step,
    await checkUsers(client, site, companies.companies),
    await checkIntegrationUsers(client, site),
    await checkZipExport(client, auth, site, companies.companies[0]),
  ]);
}

/**
 * The steps without the credentials `client` sent (CpqHttpClient.withoutCredentials), as a run's
 * error is: a step quotes what CPQ said (a record's field, a company's name, a header), which a
 * gateway reflecting the request may have made the credentials (review HM: a run hid them, check printed them).
 */
function withoutCredentials(client: CpqHttpClient, steps: StepResult[]): StepResult[] {
  return steps.map((s) => ({
    ...s,
    detail: client.withoutCredentials(s.detail, 'a detail'),
    ...(s.fix === undefined ? {} : { fix: client.withoutCredentials(s.fix, 'a fix') }),
  }));
}

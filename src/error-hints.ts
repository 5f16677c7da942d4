import type { CpqAuthConfig, CpqConfig } from './config.js';
import { parseConnectionUrl } from './connection-url.js';
import { SyncError, errorMessage, urlForMessages } from './errors.js';

/*
 * The fix for the failures people meet first, appended to the one-line error of a command (and
 * shown by `cpq-sync check` under the step that failed). Each hint names the setting to change,
 * never a secret: the README's Troubleshooting section lists them, and
 * test/troubleshooting.test.ts holds the README to the real messages.
 */

export type PathPrefix = CpqConfig['pathPrefix'];

/**
 * How a site answered `GET {prefix}/rest/v16/companies`: with data, by refusing the credentials
 * (the path exists behind them), 404, or otherwise (unreachable, 5xx: the message says).
 */
export type PrefixAnswer = { kind: 'ok' } | { kind: 'refused' } | { kind: 'missing' } | { kind: 'error'; message: string };

/** The answer under each prefix, from `probePrefixes` (src/check/prefix.ts). */
export type PrefixProbe = Record<PathPrefix, PrefixAnswer>;

/** What the CLI learned about a failure besides the error itself. */
export interface HintFacts {
  /** The site the failure came from. */
  cpq?: CpqConfig;
  /** Asked only when `wantsPrefixProbe` says the failure was a 404 from CPQ. */
  prefixes?: PrefixProbe;
  /** The same, asked at the root of a base URL with a path, when neither prefix answered under that path. */
  rootPrefixes?: RootProbe;
}

/**
 * How a base URL's root answered (src/check/prefix.ts): under each prefix, and, when it refused the
 * credentials, whether it refused a path no site has too. A gateway's own login refuses everything.
 */
export type RootProbe = PrefixProbe & { refusesEveryPath?: boolean };

export const otherPrefix = (prefix: PathPrefix): PathPrefix => (prefix === '' ? '/cpq' : '');

/** How a prefix is written as a setting, so that the empty one is visible. */
export const prefixSetting = (prefix: PathPrefix): string =>
  prefix === '' ? 'CPQ_PATH_PREFIX= (empty, a classic site)' : 'CPQ_PATH_PREFIX=/cpq (a Fusion site)';

const answers = (a: PrefixAnswer) => a.kind === 'ok' || a.kind === 'refused';

/** The path of a base URL beyond its origin (an API address copied whole, a gateway's), or undefined when it has none. */
export function baseUrlPath(baseUrl: string): { origin: string; path: string } | undefined {
  const base = URL.canParse(baseUrl) ? new URL(baseUrl) : undefined;
  return base === undefined || base.pathname.replace(/\/+$/, '') === '' ? undefined : { origin: base.origin, path: base.pathname };
}

/** Whether the root of a base URL with a path is worth asking: neither prefix answered under that path. */
export const wantsRootProbe = (probe: PrefixProbe, baseUrl: string): boolean =>
  baseUrlPath(baseUrl) !== undefined && !answers(probe['']) && !answers(probe['/cpq']);

/** A 404 from CPQ: the path prefix, or the company, may be wrong; the CLI asks both prefixes before hinting. */
export function wantsPrefixProbe(err: unknown): boolean {
  return err instanceof SyncError && err.kind === 'source' && err.status === 404;
}

/**
 * The fix for a 404 from CPQ, knowing how both prefixes answered: the other prefix when only it
 * answers, the company when the configured prefix answers (its companies exist, this one does
 * not), else the site's address. For a base URL with a path, `root` is how its root answered:
 * only a root that answers makes dropping the path the fix (a gateway's path may be meant).
 */
export function prefixHint(configured: PathPrefix, probe: PrefixProbe, failedUrl?: string, baseUrl?: string, root?: RootProbe): string {
  const other = otherPrefix(configured);
  if (!answers(probe[configured]) && answers(probe[other])) {
    return `this site answers under ${prefixSetting(other)}, not under ${prefixSetting(configured)}: set CPQ_PATH_PREFIX=${other}`;
  }
  if (answers(probe[configured])) {
    const company = failedUrl === undefined ? undefined : /\/companies\/([^/?]+)\/users/.exec(failedUrl)?.[1];
    return company === undefined
      ? `the path prefix is right (${prefixSetting(configured)}); this resource is not on the site`
      : `the site has no company "${decodeURIComponent(company)}": check CPQ_COMPANIES (cpq-sync check lists the site's companies)`;
  }
  // A base URL with a path (an API address copied whole, a gateway's): the prefixes were asked under that path.
  const withPath = baseUrl === undefined ? undefined : baseUrlPath(baseUrl);
  if (withPath !== undefined) {
    const under = `neither CPQ_PATH_PREFIX= (empty) nor /cpq answers at /rest/v16/companies under the path ${withPath.path} of CPQ_BASE_URL`;
    const atRoot = root === undefined ? undefined : [configured, other].find((prefix) => answers(root[prefix]));
    if (root !== undefined && atRoot === undefined) {
      return `${under}, nor at its root ${withPath.origin}: check that path (a gateway's, mistyped?) and the host in CPQ_BASE_URL`;
    }
    // Its refusal says nothing of where the site is (review EL): told to drop the path, the operator
    // would only meet the same refusal at the root.
    if (root?.refusesEveryPath === true) {
      return `${under}, and its root ${withPath.origin} refuses every request, one for a path no site has among them (a gateway's own login, or a site refusing these credentials): check that path (a gateway's, mistyped?), the host in CPQ_BASE_URL and the credentials`;
    }
    const prefix = atRoot === undefined || atRoot === configured ? '' : ` and ${prefixSetting(atRoot)}`;
    return `${under}${root === undefined ? '' : `; its root ${withPath.origin} answers`}: give the site's root, without a path: set CPQ_BASE_URL=${withPath.origin}${prefix}`;
  }
  return 'neither CPQ_PATH_PREFIX= (empty) nor /cpq answers at /rest/v16/companies: check CPQ_BASE_URL (scheme, host, port)';
}

/** Which auth method a request used, for a refusal; names settings and the user name, never a secret. */
export function describeAuth(auth: CpqAuthConfig): string {
  switch (auth.kind) {
    case 'basic':
      return `Basic auth as user "${auth.username}" (CPQ_USERNAME and CPQ_PASSWORD or CPQ_PASSWORD_FILE)`;
    case 'bearer':
      return 'a bearer token (CPQ_TOKEN or CPQ_TOKEN_FILE)';
    case 'oauth':
      return `an OAuth token for client "${auth.clientId}" from ${urlForMessages(auth.tokenUrl)} (CPQ_OAUTH_*)`;
    case 'none':
      return 'no credentials (no CPQ_* auth setting is set)';
  }
}

/** The fix for refused credentials, from the refusal's message: CPQ's 401 or 403, or the OAuth token service's. */
export function authHint(auth: CpqAuthConfig, message: string): string {
  const tried = `tried ${describeAuth(auth)}`;
  if (auth.kind === 'none') return `${tried}: set CPQ_USERNAME and CPQ_PASSWORD, CPQ_TOKEN, or the CPQ_OAUTH_* settings`;
  if (/OAuth token/.test(message)) return `${tried}: check CPQ_OAUTH_TOKEN_URL, the client id and secret, and CPQ_OAUTH_SCOPE`;
  if (/\(403\)/.test(message)) return `${tried}: accepted as someone, but refused this resource; give that user the REST API permissions CPQ requires`;
  return `${tried}: check those settings (and that the user may use the REST API)`;
}

const TLS_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|certificate|TLS|SSL/i;
/** The server ended the handshake (a TLS alert) before any certificate of its was judged. */
const HANDSHAKE_REFUSED = /alert|handshake failure/i;
const TLS_NAME_ERROR = /ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match/i;
/** What OpenSSL says of an answer that is no TLS (a plain http port). */
const NOT_TLS = /WRONG_VERSION_NUMBER|wrong version number|packet length too long|unknown protocol/i;

/** The fix for a TLS failure (no TLS at all, a handshake refused, a certificate that did not verify); undefined for other network errors. */
export function tlsHint(message: string, cpq: CpqConfig | undefined): string | undefined {
  if (TLS_NAME_ERROR.test(message)) {
    return 'the certificate does not name the host of CPQ_BASE_URL: use the host name the certificate was issued for';
  }
  if (NOT_TLS.test(message)) {
    return 'the server at that host and port does not speak TLS: if it serves plain http, write http:// in CPQ_BASE_URL (allowed to loopback, or with CPQ_ALLOW_INSECURE_HTTP=true); otherwise check the port';
  }
  if (!TLS_ERROR.test(message)) return undefined;
  // A handshake refused (a server asking for a client certificate, or speaking only an old TLS): no CA file helps.
  if (HANDSHAKE_REFUSED.test(message)) {
    return 'the TLS handshake with the site failed before its certificate was judged: check that the host and port of CPQ_BASE_URL serve TLS 1.2 or later, and whether the site asks for a client certificate (not supported)';
  }
  if (/CERT_HAS_EXPIRED|CERT_NOT_YET_VALID/.test(message))
    return "the site's certificate is outside its validity dates: renew it, or check this machine's clock";
  return cpq?.ca
    ? "the certificate did not verify against the system's CAs and CPQ_CA_FILE: put the CA that issued the site's certificate (PEM) in CPQ_CA_FILE"
    : "the site's certificate is not issued by a CA this system trusts: set CPQ_CA_FILE to a PEM file of that CA (certificates are always verified)";
}

/** The fix for a site that does not answer at all (not a certificate problem). */
export function unreachableHint(message: string): string | undefined {
  if (/ENOTFOUND|EAI_AGAIN/.test(message)) return 'the host of CPQ_BASE_URL does not resolve: check its spelling, and DNS from this machine';
  if (/ECONNREFUSED/.test(message)) return 'nothing listens at the host and port of CPQ_BASE_URL: check them';
  if (/ETIMEDOUT|no response within|no data for/.test(message)) {
    return 'CPQ did not answer in time: check that this machine may reach it (proxy, firewall), or raise CPQ_REQUEST_TIMEOUT';
  }
  return undefined;
}

/**
 * The fix for a site that kept answering a status worth retrying (src/cpq/http-client.ts) until
 * the retries ran out: a failure of CPQ's, not of the setup, which the next run tries again.
 */
export function retriesSpentHint(message: string): string | undefined {
  const [, status] = /CPQ still answered (\d{3}) after/.exec(message) ?? [];
  if (status === undefined) return undefined;
  if (status === '429')
    return 'CPQ kept asking this client to slow down: the next run tries again; if it lasts, lower CPQ_MAX_IN_FLIGHT or raise CPQ_MAX_RETRIES';
  return "CPQ (or a proxy in front of it) kept failing: the next run tries again; if it lasts, ask the site's administrators (an outage, maintenance)";
}

/**
 * The fix for a redirect to another origin, which no request follows (src/cpq/http-client.ts):
 * an address that moves to https says which to set; any other, most often a sign-in page in
 * front of the site, that CPQ_BASE_URL must be where the REST API answers itself.
 */
export function redirectHint(message: string): string | undefined {
  const [, from, to] = /CPQ redirected from (\S+) to (\S+); redirects are followed only within/.exec(message) ?? [];
  if (from === undefined || to === undefined) return undefined;
  // `to` is an origin, or "a ftp: URL" (never a path: the message names origins alone).
  const url = (text: string) => (URL.canParse(text) ? new URL(text) : undefined);
  const [source, target] = [url(from), url(to)];
  if (source?.protocol === 'http:' && target?.protocol === 'https:' && source.hostname === target.hostname) {
    return `CPQ moves this address to https: set CPQ_BASE_URL=${target.origin}`;
  }
  return `CPQ sends the REST API on to ${to} (a sign-in page in front of the site?): set CPQ_BASE_URL to the address the REST API answers at itself, https://<site>.bigmachines.com`;
}

/**
 * Where the password of a refused connection came from: the URL the message names (before its
 * host, or its `password` parameter, which node-postgres reads as well), else PGPASSWORD, else
 * the password file (noted in the message by password-file.ts, as is one there but ignored for
 * its mode), else nowhere. With none, node-postgres sends none (SCRAM fails in the client), an empty one
 * (`password` method: "empty password returned by client"), or the MD5 of none ("password
 * authentication failed"): none of them says a password is missing.
 */
function passwordSource(message: string, env: NodeJS.ProcessEnv): 'url' | 'PGPASSWORD' | { file: string } | { ignored: string; why: string } | 'none' {
  const parsed = connectionUrlIn(message);
  if (parsed === undefined || parsed.password !== '' || parsed.searchParams.get('password')) return 'url';
  if (env.PGPASSWORD) return 'PGPASSWORD';
  const [, ignored, why] = / \(password file (.+) ignored: (.+)\)$/.exec(message) ?? [];
  if (ignored !== undefined && why !== undefined) return { ignored, why };
  const file = / \(password from (.+)\)$/.exec(message)?.[1];
  return file === undefined ? 'none' : { file };
}

/** The database URL a connection error names (its password hidden), parsed. */
function connectionUrlIn(message: string): URL | undefined {
  const url = /^cannot connect to Postgres at (\S+): /.exec(message)?.[1];
  return url === undefined ? undefined : parseConnectionUrl(url);
}

/** A name as SQL quotes it, ready to paste into psql. */
function sqlIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * The fix for a connection whose TLS failed (DATABASE_URL with sslmode, sslrootcert): not
 * pg_hba.conf, which the server never got to. node-postgres verifies the certificate and its host
 * name whatever the sslmode (but disable and no-verify), where libpq's require checks neither: a
 * server whose certificate a private CA issued is trusted by naming that CA in sslrootcert.
 */
function databaseTlsHint(message: string): string | undefined {
  if (/does not support SSL connections/.test(message)) {
    return 'the database server does not accept TLS connections: turn TLS on at the server (ssl = on in postgresql.conf, with its certificate and key), or drop sslmode from DATABASE_URL';
  }
  if (TLS_NAME_ERROR.test(message)) {
    return "the database server's certificate does not name the host of DATABASE_URL: use the host name the certificate was issued for";
  }
  if (/certificate has expired|certificate is not yet valid/.test(message)) {
    return "the database server's certificate is outside its validity dates: renew it, or check this machine's clock";
  }
  if (!/self[- ]signed|unable to verify|unable to get (local )?issuer|certificate chain|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)/i.test(message)) return undefined;
  return connectionUrlIn(message)?.searchParams.get('sslrootcert')
    ? "the database server's certificate did not verify against the sslrootcert of DATABASE_URL: put the CA that issued it (PEM) in that file"
    : "the database server's certificate is not issued by a CA this system trusts: set sslrootcert=/path/ca.crt in DATABASE_URL to that CA (PEM); node-postgres verifies the certificate with sslmode=require too, unlike libpq";
}

/** The fix for a database that could not be reached; the message already names it, password hidden. */
export function databaseHint(message: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!message.startsWith('cannot connect to Postgres')) return undefined;
  const passwordAsked = /client password must be a string|no password supplied|empty password returned by client|password authentication failed|SASL/i;
  if (passwordAsked.test(message)) {
    const source = passwordSource(message, env);
    switch (source) {
      case 'none':
        return 'DATABASE_URL names no password and the server asks for one: write it in the URL (postgres://user:password@host/database), set PGPASSWORD, or add a line for it to ~/.pgpass (PGPASSFILE)';
      case 'PGPASSWORD':
        return 'the database refused the user of DATABASE_URL or the password of PGPASSWORD (the URL names none): check both';
      case 'url':
        return 'the database refused the user or password: check DATABASE_URL';
      default:
        if ('ignored' in source) {
          return `DATABASE_URL names no password and the server asks for one; the password file ${source.ignored} is ignored, as libpq ignores it, since ${source.why}: chmod 600 ${source.ignored}`;
        }
        return `the database refused the user of DATABASE_URL or the password ${source.file} gives it (the URL names none, nor PGPASSWORD): check both`;
    }
  }
  if (/database "[^"]*" does not exist/.test(message)) return 'create that database first, or name an existing one in DATABASE_URL';
  // The server let the role in, but not into that database (REVOKE CONNECT … FROM PUBLIC, as
  // hardened servers do): neither the URL nor pg_hba.conf is what is wrong.
  const noConnect = /permission denied for database "([^"]*)"/.exec(message)?.[1];
  if (noConnect !== undefined) {
    const role = connectionUrlIn(message)?.username;
    const grantee = role ? sqlIdentifier(decodeURIComponent(role)) : '<role>';
    return `the role of DATABASE_URL may not connect to database ${noConnect}: its owner (or a superuser) grants it, GRANT CONNECT ON DATABASE ${sqlIdentifier(noConnect)} TO ${grantee}`;
  }
  // Said only by a server that asks no password of that user (trust, peer, cert): one that asks
  // for one says its password failed instead, so as not to tell who exists.
  const noRole = /role "([^"]*)" does not exist/.exec(message)?.[1];
  if (noRole !== undefined)
    return `the server has no role ${noRole}: check the user name in DATABASE_URL, or have a DBA create it (CREATE ROLE ${sqlIdentifier(noRole)} LOGIN)`;
  if (/ENOTFOUND|EAI_AGAIN/.test(message)) return 'the host of DATABASE_URL does not resolve: check its spelling';
  if (/ECONNREFUSED/.test(message)) return 'nothing listens at that host and port: start Postgres, or correct DATABASE_URL';
  if (/no answer within DATABASE_CONNECT_TIMEOUT/.test(message)) {
    return 'something at that host and port took the connection but did not answer as Postgres: check the port in DATABASE_URL, and that Postgres (or the pooler in front of it) is not stuck; a database that resumes from pause may need a longer DATABASE_CONNECT_TIMEOUT';
  }
  const tls = databaseTlsHint(message);
  if (tls !== undefined) return tls;
  // Our own refusal (DatabaseClient): the server's method, or the connection's TLS, is what to change.
  if (/asked for the password in clear text/.test(message))
    return "set the server's pg_hba.conf line for this connection to scram-sha-256, or connect with TLS (sslmode=verify-full)";
  return 'check DATABASE_URL, and that Postgres runs and lets this machine in (pg_hba.conf)';
}

/** The hint for a failure, or undefined when none applies. */
export function hintFor(err: unknown, facts: HintFacts = {}): string | undefined {
  if (!(err instanceof SyncError)) return undefined;
  const cpq = facts.cpq;
  const message = errorMessage(err);
  switch (err.kind) {
    case 'auth':
      return cpq ? authHint(cpq.auth, message) : undefined;
    case 'source': {
      if (err.status === 404 && cpq && facts.prefixes) {
        return prefixHint(cpq.pathPrefix, facts.prefixes, /^GET (\S+):/.exec(message)?.[1], cpq.baseUrl, facts.rootPrefixes);
      }
      return (
        tlsHint(message, cpq) ?? redirectHint(message) ?? (/unreachable/.test(message) ? unreachableHint(message) : undefined) ?? retriesSpentHint(message)
      );
    }
    case 'database':
      return databaseHint(message);
    default:
      return undefined;
  }
}

/** The one-line error with its hint, if any. */
export function withHint(message: string, hint: string | undefined): string {
  return hint === undefined ? message : `${message}; hint: ${hint}`;
}

import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { errorCode, errorMessage, hasControlCharacter, isHeaderText, relativeToWorkingDirectory } from './errors.js';
import { validateDetailed } from 'node-cron';
import { envSchema, type ParsedEnv } from './config-env.js';
import { readSiteOverlays, siteKeysIn } from './sites-file.js';
import {
  ConfigFileRefused,
  foreignDatabaseCertificate,
  foreignWriterOfPath,
  foreignWriterRefusal,
  othersMayRead,
  readOwnConfigFile,
} from './foreign-writer.js';
import { nearMiss } from './near-miss.js';
import { hostWithoutKeys } from './secret-echo.js';

/** Thrown for a configuration problem; the message names the variable and never its secret value. */
export class ConfigError extends Error {
  override name = 'ConfigError';

  /**
   * @param problems the message's problems one by one: a sites file names each by its site and
   * key, which cutting the message at its semicolons would get wrong for a problem holding one.
   */
  constructor(
    message: string,
    readonly problems: readonly string[] = [message],
  ) {
    super(message);
  }

  /** One error for one problem or several, in one line: "invalid configuration: a; b". */
  static listing(problems: readonly string[]): ConfigError {
    return new ConfigError(`invalid configuration: ${problems.join('; ')}`, problems);
  }
}

/**
 * The mistakes found so far in reading a configuration: each check runs whatever the ones before
 * it found, so that one mistake does not hide the next (README: every wrong value is named, all
 * in one line).
 */
class Mistakes {
  private readonly errors: ConfigError[] = [];
  /** Variables whose values the schema refused: they stand at their defaults while the rest is checked. */
  private readonly refused = new Set<string>();

  /** `part`'s value, or undefined when it throws a ConfigError, which is kept to be reported with the rest. */
  attempt<T>(part: () => T): { value: T } | undefined {
    try {
      return { value: part() };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      this.add(err);
      return undefined;
    }
  }

  add(error: ConfigError): void {
    // A problem that names a refused variable was found with its default standing in: the refused
    // value is the mistake (an HTTP_HOST "without HTTP_PORT" when HTTP_PORT was refused).
    const kept = error.problems.filter((problem) => !(problem.match(/\b[A-Z][A-Z0-9_]*[A-Z0-9]\b/g) ?? []).some((name) => this.refused.has(name)));
    if (kept.length === error.problems.length) this.errors.push(error);
    else if (kept.length > 0) this.errors.push(ConfigError.listing(kept));
  }

  /**
   * The environment as the schema reads it. A value it refuses is named, and the variable stands
   * at its default for the checks that follow: a bad CPQ_PAGE_SIZE does not hide an unreadable
   * CPQ_PASSWORD_FILE.
   */
  parse(env: Env): ParsedEnv {
    const result = envSchema.safeParse(env);
    if (result.success) return result.data;
    this.add(ConfigError.listing(result.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`)));
    // Every rule is of one variable, so each issue names the variable it refuses (path[0]).
    for (const issue of result.error.issues) this.refused.add(String(issue.path[0]));
    return envSchema.parse(Object.fromEntries(Object.entries(env).filter(([name]) => !this.refused.has(name))));
  }

  /** Whether the schema refused `name`'s value. */
  refuses(name: string): boolean {
    return this.refused.has(name);
  }

  /** Every problem found, each once (the environment's bad value, read again by each site of a sites file, is one problem). */
  get problems(): string[] {
    return [...new Set(this.errors.flatMap((error) => error.problems))];
  }

  /** Throws what was found, one mistake or several, in one line that starts "invalid configuration:". */
  throwAny(): void {
    if (this.errors.length > 0) throw ConfigError.listing(this.problems);
  }
}

export type CpqAuthConfig =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; token: string }
  | { kind: 'oauth'; tokenUrl: string; clientId: string; clientSecret: string; scope?: string };

export interface CpqConfig {
  baseUrl: string;
  pathPrefix: '' | '/cpq';
  companies: string[];
  hostCompany?: string;
  integrationUsers: 'auto' | 'on' | 'off';
  auth: CpqAuthConfig;
  /**
   * A CPQ_SITES_FILE site whose own keys (username, token, oauth, …) give `auth`: messages name
   * those keys. Unset when `auth` is the environment's CPQ_* variables, a file site's included.
   */
  authInSitesFile?: true;
  /** PEM certificates to trust besides the system's, for sites behind a private CA. */
  ca?: string;
  pageSize: number;
  concurrency: number;
  /** Requests sent to the site at once, across every company, range and stream (halved while CPQ pushes back). */
  maxInFlight: number;
  /** Most key ranges a large company (or incremental window) is split into, read in parallel. */
  keyRanges: number;
  /** A read is split into key ranges only when its first page took at least this long (ms). */
  splitSlowerThanMs: number;
  requestTimeoutMs: number;
  maxRetries: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** Largest response body read into memory (a JSON page), and largest page of zip records, in bytes. */
  maxPageBytes: number;
  exportFormat: 'json' | 'zip';
  zip: { maxBytes: number; maxEntries: number; maxRatio: number; maxTotalBytes: number; downloadTimeoutMs: number; tmpDir: string | undefined };
}

/** One CPQ site: its name (the `site` of every row it writes), how to read it, and its schedule. */
export interface SiteConfig {
  name: string;
  cpq: CpqConfig;
  cron: string;
  timezone: string;
  /** The alert rules of its runs: the environment's, or the site's own. */
  alerts: AlertRuleSettings;
}

/** The site the environment alone defines, and the site of every row a single-site release wrote. */
export const DEFAULT_SITE = 'default';

export interface AppConfig {
  databaseUrl?: string;
  dataDir: string;
  embeddedPort: number;
  /** SYNC_LOCK_TIMEOUT: how long a statement waits for a lock (createPool). */
  lockTimeoutMs: number;
  /** DATABASE_CONNECT_TIMEOUT: longest a new database connection may take to be made. */
  connectTimeoutMs: number;
  /**
   * The site the environment alone names (CPQ_BASE_URL and the other CPQ_* settings); undefined
   * when CPQ_BASE_URL is not set, and when CPQ_SITES_FILE is (its sites inherit those settings).
   */
  cpq?: CpqConfig;
  /** Every site to sync: those of CPQ_SITES_FILE, or the environment's one, named `default`. */
  sites: SiteConfig[];
  /**
   * Variables the environment sets that cpq-sync does not read, yet that look like its own (a
   * typo of one, or one of its prefixes): each as a line that names it, and the variable it may
   * be a typo of. Logged as a warning by every command, shown by `check`.
   */
  unknownVariables: string[];
  /**
   * Of unknownVariables, the typos of a variable that is set too (CPQ_COMPANYS beside
   * CPQ_COMPANIES): correcting the name would not give a setting its value, as it would for a
   * variable left at its default; `check`'s fix says so (review JB).
   */
  typosBesideTheirVariable: { name: string; variable: string }[];
  /** What is wrong but stops nothing (a sites file holding a secret, or a secret's own file, that others can read): logged as a warning by every command, shown by `check`. */
  warnings: string[];
  lookbackMs: number;
  /** A stream whose last full read is older than this is read in full. */
  fullEveryMs: number;
  maxDeleteFraction: number;
  /** A deletion of at most this many of a company's users is never refused as a mass deletion. */
  massDeleteMin: number;
  /** New users are merged every this many staged users while the read goes on; 0 = all at the end. */
  mergeBatchUsers: number;
  /** A company the database holds no user of is written straight to the final tables. */
  directFirstLoad: boolean;
  /** HISTORY_RETENTION: personal fields of versions ended, changes logged and users deleted longer ago are redacted; undefined = kept. */
  historyRetentionMs?: number;
  worker: {
    /** The schedule of the environment's site, and the default of every site of a sites file. */
    cron: string;
    timezone: string;
    /** How many sites one `schedule` process syncs at once. */
    siteConcurrency: number;
    staleAfterMs: number;
    shutdownTimeoutMs: number;
    httpPort: number | undefined;
    /** The address health and metrics listen on; undefined = every interface. */
    httpHost: string | undefined;
  };
  logLevel: string;
  logFormat: 'auto' | 'json' | 'pretty';
  alerts: AlertsConfig;
}

/** The alert rules, in the order the README lists them. */
export const ALERT_RULE_NAMES = ['admin_flag', 'group_membership', 'access_permission', 'integration_user', 'user_restored'] as const;
export type AlertRule = (typeof ALERT_RULE_NAMES)[number];
/**
 * The rule of the one summary alert a run raises when its alerts number more than
 * ALERT_MAX_PER_RUN (insertAlerts): not one ALERT_RULES can name, since it bounds the others.
 */
export const ALERT_FLOOD_RULE = 'alert_flood';

/** Which alerts a run computes: ALERT_RULES and ALERT_GROUPS, which a site may set for itself (alertRules, alertGroups). */
export interface AlertRuleSettings {
  rules: readonly AlertRule[];
  /** Glob patterns (`*`, `?`) on group variable names, matched ignoring case. */
  groups: readonly string[];
}

export interface AlertsConfig {
  /** Undefined when ALERT_WEBHOOK_URL is not set: runs compute no alerts and nothing is sent. */
  webhook: { url: string; secret: string; timeoutMs: number } | undefined;
  rules: AlertRuleSettings;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  /** How often `schedule` retries pending alerts between runs. */
  retryEveryMs: number;
  /** ALERT_MAX_PER_RUN: the alerts of one run sent at most; past it, a summary and the rest kept unsent (insertAlerts). */
  maxPerRun: number;
}

type Env = Record<string, string | undefined>;

/**
 * A setting given as itself (`name`) or by a file (`fileName`): variables of `env`, or the options
 * of a command (`simulate --password`/`--password-file`). With `chooses` (what whoever writes
 * the file would choose: where alerts go), a file another local user could have written is refused.
 */
export function secret(env: Env, name: string, fileName: string, chooses?: string): string | undefined {
  const direct = env[name]?.trim() ? env[name] : undefined;
  const file = env[fileName]?.trim();
  if (direct !== undefined && file) throw new ConfigError(`${name} and ${fileName} are both set: use one`);
  if (!file) return direct;
  try {
    return (chooses === undefined ? readFileSync(file, 'utf8') : readOwnFile(file, fileName, chooses)).replace(/\r?\n$/, '');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // The value is not printed: it may be the secret itself, pasted where its file's path belongs.
    throw new ConfigError(
      `${fileName}: cannot read the file it names (not printed: it may be the secret itself) (${errorCode(err) ?? 'error'}${relativeToWorkingDirectory(file, err)})`,
    );
  }
}

/** The settings whose file secret() reads a secret from. */
const SECRET_FILE_VARIABLES = ['CPQ_PASSWORD_FILE', 'CPQ_TOKEN_FILE', 'CPQ_OAUTH_CLIENT_SECRET_FILE', 'ALERT_WEBHOOK_URL_FILE', 'ALERT_WEBHOOK_SECRET_FILE'];

/**
 * `VARIABLE: other users can read the file it names (mode 644): chmod 600 it`, for each of
 * `variables` (secret files that `env` names) whose file another local user may read: the fix a
 * warning about a secret in a .env or sites file gives is a file of its own, and the default umask
 * makes that one readable by all too (review GS). Said, not refused, as for those files. The path
 * is not printed (it may be the secret itself, pasted in the wrong setting); a file that cannot be
 * read is secret()'s to name, and a pipe (`<(sops -d …)`) is no one else's.
 */
function secretFilesOthersMayRead(env: Env, variables: readonly string[] = SECRET_FILE_VARIABLES): string[] {
  return variables.flatMap((variable) => {
    const file = env[variable]?.trim();
    if (!file) return [];
    let stats;
    try {
      stats = statSync(file);
    } catch {
      return [];
    }
    return stats.isFile() && othersMayRead(stats)
      ? [`${variable}: other users can read the file it names (mode ${(stats.mode & 0o777).toString(8)}): chmod 600 it`]
      : [];
  });
}

/**
 * The text of a file whose writer `chooses` something (where alerts go), unless another local user
 * could have written it: refused as a .env or a sites file is (readOwnConfigFile), since a
 * member of a group that may write it had every alert sent to a listener of theirs (review DV).
 * Its path is not printed (see secret).
 */
function readOwnFile(file: string, fileName: string, chooses: string): string {
  try {
    return readOwnConfigFile(file)!.bytes.toString('utf8');
  } catch (err) {
    if (!(err instanceof ConfigFileRefused)) throw err;
    const refusal = err.reason === 'foreign-writer' ? foreignWriterRefusal('read it', chooses) : '';
    throw new ConfigError(`${fileName}: the file it names${err.problem}${refusal}`);
  }
}

function resolveAuth(env: Env, parsed: ParsedEnv): CpqAuthConfig {
  const mistakes = new Mistakes();
  const password = mistakes.attempt(() => secret(env, 'CPQ_PASSWORD', 'CPQ_PASSWORD_FILE'));
  const token = mistakes.attempt(() => secret(env, 'CPQ_TOKEN', 'CPQ_TOKEN_FILE'));
  const clientSecret = mistakes.attempt(() => secret(env, 'CPQ_OAUTH_CLIENT_SECRET', 'CPQ_OAUTH_CLIENT_SECRET_FILE'));
  // A secret whose file cannot be read (undefined: named above) still says which method is meant,
  // so that what else that method lacks is named with it.
  const given = (value: { value: string | undefined } | undefined) => value === undefined || Boolean(value.value);
  const chosen = [
    parsed.CPQ_USERNAME || given(password) ? 'basic' : undefined,
    given(token) ? 'bearer' : undefined,
    parsed.CPQ_OAUTH_TOKEN_URL || parsed.CPQ_OAUTH_CLIENT_ID || given(clientSecret) ? 'oauth' : undefined,
  ].filter((k) => k !== undefined);
  if (chosen.length > 1) {
    // Each method by the variables set for it: which to unset is the reader's to choose.
    const set = (names: string[]) => names.filter((name) => env[name]?.trim()).join(' and ');
    const variables: Record<string, string> = {
      basic: set(['CPQ_USERNAME', 'CPQ_PASSWORD', 'CPQ_PASSWORD_FILE']),
      bearer: set(['CPQ_TOKEN', 'CPQ_TOKEN_FILE']),
      oauth: set(['CPQ_OAUTH_TOKEN_URL', 'CPQ_OAUTH_CLIENT_ID', 'CPQ_OAUTH_CLIENT_SECRET', 'CPQ_OAUTH_CLIENT_SECRET_FILE']),
    };
    mistakes.add(
      ConfigError.listing([`more than one CPQ auth method is configured (${chosen.map((k) => `${k} by ${variables[k]}`).join(', ')}): set exactly one`]),
    );
    mistakes.throwAny();
  }
  switch (chosen[0]) {
    case 'basic':
      if (!parsed.CPQ_USERNAME) mistakes.add(new ConfigError('CPQ_USERNAME is required with CPQ_PASSWORD'));
      if (password && !password.value)
        // A file given but empty is said so: "is required" sent the operator looking for a variable they had set (review HT).
        mistakes.add(
          new ConfigError(
            env['CPQ_PASSWORD_FILE']?.trim()
              ? 'CPQ_PASSWORD_FILE: the file it names is empty: put the password in it'
              : 'CPQ_PASSWORD (or CPQ_PASSWORD_FILE) is required with CPQ_USERNAME',
          ),
        );
      mistakes.throwAny();
      return { kind: 'basic', username: parsed.CPQ_USERNAME!, password: password!.value! };
    case 'bearer': {
      mistakes.throwAny();
      // It goes into the Authorization header as it is: fetch would refuse a line break there with
      // an error quoting the whole header, token included, and a character past Latin-1 in every
      // request, retried as unreachable. Refused here, naming only the variable.
      const name = env['CPQ_TOKEN_FILE']?.trim() ? 'CPQ_TOKEN_FILE' : 'CPQ_TOKEN';
      const text = token!.value!;
      if (hasControlCharacter(text)) throw new ConfigError(`${name}: the token holds a line break or another control character (a bearer token is one line)`);
      if (!isHeaderText(text)) throw new ConfigError(`${name}: the token holds a character an HTTP header cannot carry (past Latin-1)`);
      return { kind: 'bearer', token: text };
    }
    case 'oauth': {
      const missing = [
        parsed.CPQ_OAUTH_TOKEN_URL ? undefined : 'CPQ_OAUTH_TOKEN_URL',
        parsed.CPQ_OAUTH_CLIENT_ID ? undefined : 'CPQ_OAUTH_CLIENT_ID',
        clientSecret && !clientSecret.value ? 'CPQ_OAUTH_CLIENT_SECRET' : undefined,
      ].filter((m) => m !== undefined);
      const emptyFile = clientSecret && !clientSecret.value && env['CPQ_OAUTH_CLIENT_SECRET_FILE']?.trim();
      if (emptyFile) mistakes.add(new ConfigError('CPQ_OAUTH_CLIENT_SECRET_FILE: the file it names is empty: put the client secret in it'));
      const needed = emptyFile ? missing.filter((m) => m !== 'CPQ_OAUTH_CLIENT_SECRET') : missing;
      if (needed.length) mistakes.add(new ConfigError(`OAuth client credentials need ${needed.join(', ')}`));
      if (parsed.CPQ_OAUTH_TOKEN_URL && !/^https?:\/\//i.test(parsed.CPQ_OAUTH_TOKEN_URL))
        mistakes.add(new ConfigError('CPQ_OAUTH_TOKEN_URL must be an http(s) URL'));
      mistakes.throwAny();
      return {
        kind: 'oauth',
        tokenUrl: parsed.CPQ_OAUTH_TOKEN_URL!,
        clientId: parsed.CPQ_OAUTH_CLIENT_ID!,
        clientSecret: clientSecret!.value!,
        ...(parsed.CPQ_OAUTH_SCOPE ? { scope: parsed.CPQ_OAUTH_SCOPE } : {}),
      };
    }
    default:
      mistakes.throwAny();
      return { kind: 'none' };
  }
}

/** ALERT_RULES and ALERT_GROUPS: the environment's, or a site's (alertRules, alertGroups) laid over them. */
function alertRuleSettingsFrom(parsed: ParsedEnv): AlertRuleSettings {
  const names = parsed.ALERT_RULES.split(',')
    .map((r) => r.trim().toLowerCase())
    .filter((r) => r !== '');
  const unknown = names.filter((r) => r !== 'all' && r !== 'none' && !(ALERT_RULE_NAMES as readonly string[]).includes(r));
  if (unknown.length) throw new ConfigError(`ALERT_RULES: unknown rule ${unknown.join(', ')} (rules: ${ALERT_RULE_NAMES.join(', ')}, all, none)`);
  // Commas alone would otherwise turn every alert off without a word: alerts off are asked for by name.
  if (names.length === 0) throw new ConfigError('ALERT_RULES names no rule: name the rules, or all (the default), or none to send no alerts');
  if (names.includes('none') && new Set(names).size > 1) throw new ConfigError(`ALERT_RULES: none cannot be combined with other rules (${names.join(', ')})`);
  const rules = names.includes('none') ? [] : names.includes('all') ? [...ALERT_RULE_NAMES] : ALERT_RULE_NAMES.filter((r) => names.includes(r));
  const groups = parsed.ALERT_GROUPS.split(',')
    .map((g) => g.trim())
    .filter((g) => g !== '');
  return { rules, groups };
}

/** The ALERT_* settings; the webhook needs its secret, for every alert is signed. */
function alertsConfigFrom(env: Env, parsed: ParsedEnv): AlertsConfig {
  const mistakes = new Mistakes();
  const url = mistakes.attempt(() => secret(env, 'ALERT_WEBHOOK_URL', 'ALERT_WEBHOOK_URL_FILE', 'chooses where every alert is sent')?.trim());
  const key = mistakes.attempt(() => secret(env, 'ALERT_WEBHOOK_SECRET', 'ALERT_WEBHOOK_SECRET_FILE'));
  let webhook: AlertsConfig['webhook'];
  // Neither the URL nor the secret goes into a message: a Slack webhook URL is a credential. One
  // whose file cannot be read is named above, and the other is not blamed for its absence.
  if (url?.value) {
    mistakes.attempt(() => requireSecureUrl('ALERT_WEBHOOK_URL', url.value!, parsed.CPQ_ALLOW_INSECURE_HTTP, '', hostWithoutKeys));
    if (key && !key.value)
      mistakes.add(new ConfigError('ALERT_WEBHOOK_SECRET (or ALERT_WEBHOOK_SECRET_FILE) is required with ALERT_WEBHOOK_URL: every alert is signed'));
    if (key?.value) webhook = { url: url.value, secret: key.value, timeoutMs: parsed.ALERT_WEBHOOK_TIMEOUT };
  } else if (url && key?.value) {
    mistakes.add(new ConfigError('ALERT_WEBHOOK_SECRET is set but ALERT_WEBHOOK_URL is not: set the URL too, or neither (no alerts)'));
  }
  const rules = mistakes.attempt(() => alertRuleSettingsFrom(parsed));
  mistakes.throwAny();
  return {
    webhook,
    rules: rules!.value,
    retryBaseDelayMs: parsed.ALERT_RETRY_BASE_DELAY,
    retryMaxDelayMs: Math.max(parsed.ALERT_RETRY_MAX_DELAY, parsed.ALERT_RETRY_BASE_DELAY),
    retryEveryMs: parsed.ALERT_RETRY_EVERY,
    maxPerRun: parsed.ALERT_MAX_PER_RUN,
  };
}

/** Loopback addresses, where plain http does not cross a network (a local user may still listen on a port nothing holds: README, threat model). */
function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * The URL `name` gives, read as Node reads it: http(s), with no user name or password in it
 * (`credentialsInstead` says where they go), plain http only to loopback or when the operator
 * allows it (credentials over plain http to another machine can be read on the way). Never
 * echoed: a webhook URL is a credential. Its host is named as `shownHost` gives it: a webhook's
 * without its labels that look like keys, a Pipedream URL's secret (review IM).
 */
function requireSecureUrl(name: string, url: string, allowInsecure: boolean, credentialsInstead = '', shownHost = (host: string) => host): URL {
  // Past the schema's pattern, a URL can still be one Node refuses (a port above 65535, a space in the host).
  if (!URL.canParse(url)) throw new ConfigError(`${name} is not a URL Node can read (a port above 65535, a space in the host?)`);
  const parsed = new URL(url);
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new ConfigError(`${name} must be an http(s) URL`);
  if (parsed.username || parsed.password) throw new ConfigError(`${name} must not contain a user name or password${credentialsInstead}`);
  if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname) && !allowInsecure) {
    throw new ConfigError(`${name} uses plain http to ${shownHost(parsed.hostname)}: use https, or set CPQ_ALLOW_INSECURE_HTTP=true if you really mean it`);
  }
  return parsed;
}

/**
 * The certificates CPQ_CA_FILE names, unless another local user could have written the file:
 * whoever may add a CA to it chooses which server the CPQ address is trusted at. A member of a
 * group that could write it added their own and listened on the loopback port of the operator's
 * tunnel: `check` said "TLS verified" and sent them the CPQ password (review HA). Refused as a
 * .env, a sites file or ALERT_WEBHOOK_URL_FILE is (readOwnConfigFile).
 */
function readCaFile(file: string | undefined): string | undefined {
  if (!file) return undefined;
  let text: string;
  try {
    text = readOwnConfigFile(file)!.bytes.toString('utf8');
  } catch (err) {
    if (!(err instanceof ConfigFileRefused)) throw new ConfigError(`CPQ_CA_FILE: cannot read ${file} (${errorCode(err) ?? 'error'})`);
    const refusal =
      err.reason === 'foreign-writer' ? foreignWriterRefusal('read it', 'chooses which server is trusted as CPQ, and so where the credentials go') : '';
    throw new ConfigError(`CPQ_CA_FILE: ${file}${err.problem}${refusal}`);
  }
  const problem = caCertificatesProblem(text);
  if (problem) throw new ConfigError(`CPQ_CA_FILE: ${file} ${problem}`);
  return text;
}

/**
 * Why `text` is not a CA file, or undefined when it is: one certificate or more in PEM, each one
 * readable. Node's TLS takes any text as CAs and adds none of it: a key, a DER file or an empty one
 * given by mistake was accepted, and every request then failed "not issued by a CA this system
 * trusts", naming the file as if it had been read (review HK).
 */
function caCertificatesProblem(text: string): string | undefined {
  // OpenSSL's TRUSTED CERTIFICATE (a certificate with its trust settings) and the older X509
  // CERTIFICATE are read by Node's TLS too: counted, not parsed (X509Certificate reads neither; review HY).
  const others = /-----BEGIN (?:TRUSTED|X509) CERTIFICATE-----[^-]*-----END (?:TRUSTED|X509) CERTIFICATE-----/.test(text);
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0 && !others)
    return "holds no certificate in PEM form (-----BEGIN CERTIFICATE-----): put the certificate of the CA that issued the site's there (from DER: openssl x509 -inform der -in FILE -out ca.pem)";
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block);
    } catch (err) {
      return `holds a certificate that cannot be read (certificate ${i + 1} of ${blocks.length}: ${errorMessage(err)}): put the certificate of the CA that issued the site's there, in PEM`;
    }
  }
  return undefined;
}

/**
 * NODE_EXTRA_CA_CERTS refused when another local user could have written the file it names: Node
 * trusts its CAs for every TLS connection (CPQ without CPQ_CA_FILE, the database without
 * sslrootcert), so its writer chooses which servers are taken for them, as CPQ_CA_FILE's does
 * (review HB). Node read it as the process started; nothing has been sent yet.
 */
function refuseForeignExtraCaCertificates(env: Env): void {
  const file = env.NODE_EXTRA_CA_CERTS?.trim();
  if (!file) return;
  let problem;
  try {
    problem = foreignWriterOfPath(file);
  } catch {
    return; // Node warned of a file it could not read, and trusts nothing more.
  }
  if (problem !== undefined)
    throw new ConfigError(
      `NODE_EXTRA_CA_CERTS: ${file}${problem}${foreignWriterRefusal('start', 'chooses which servers are trusted as CPQ and as the database')}`,
    );
}

/** The CPQ site an environment names (CPQ_* settings), or undefined when CPQ_BASE_URL is not set. */
function cpqConfigFrom(env: Env, parsed: ParsedEnv): CpqConfig | undefined {
  const mistakes = new Mistakes();
  const auth = mistakes.attempt(() => resolveAuth(env, parsed))?.value;
  const useAuthSettings = ': use the CPQ_* auth settings';
  if (parsed.CPQ_BASE_URL) mistakes.attempt(() => requireSecureUrl('CPQ_BASE_URL', parsed.CPQ_BASE_URL!, parsed.CPQ_ALLOW_INSECURE_HTTP, useAuthSettings));
  if (auth?.kind === 'oauth') mistakes.attempt(() => requireSecureUrl('CPQ_OAUTH_TOKEN_URL', auth.tokenUrl, parsed.CPQ_ALLOW_INSECURE_HTTP, useAuthSettings));
  const ca = parsed.CPQ_BASE_URL ? mistakes.attempt(() => readCaFile(parsed.CPQ_CA_FILE))?.value : undefined;
  mistakes.throwAny();
  if (!parsed.CPQ_BASE_URL) return undefined;
  // A Fusion site's root given with its prefix (https://x.example.com/cpq, no CPQ_PATH_PREFIX): the
  // same API root (siteCpqUrl), read as root and prefix. Taken as written, the company feed answered
  // there, but the integration feed (always under /cpq) was asked under /cpq/cpq, or, with auto,
  // not at all: every integration user read as a plain user, without a word.
  const written = parsed.CPQ_BASE_URL.replace(/\/+$/, '');
  const prefixInBase = parsed.CPQ_PATH_PREFIX === '' && written.endsWith('/cpq') && new URL(written).pathname.endsWith('/cpq');
  return {
    baseUrl: prefixInBase ? written.slice(0, -'/cpq'.length) : written,
    pathPrefix: prefixInBase ? '/cpq' : parsed.CPQ_PATH_PREFIX,
    companies: parsed.CPQ_COMPANIES,
    ...(parsed.CPQ_HOST_COMPANY ? { hostCompany: parsed.CPQ_HOST_COMPANY } : {}),
    integrationUsers: parsed.CPQ_INTEGRATION_USERS,
    auth: auth!,
    ...(ca ? { ca } : {}),
    pageSize: parsed.CPQ_PAGE_SIZE,
    concurrency: parsed.CPQ_CONCURRENCY,
    maxInFlight: parsed.CPQ_MAX_IN_FLIGHT,
    keyRanges: parsed.CPQ_KEY_RANGES,
    splitSlowerThanMs: parsed.CPQ_SPLIT_SLOWER_THAN,
    requestTimeoutMs: parsed.CPQ_REQUEST_TIMEOUT,
    maxRetries: parsed.CPQ_MAX_RETRIES,
    retryBaseDelayMs: parsed.CPQ_RETRY_BASE_DELAY,
    retryMaxDelayMs: parsed.CPQ_RETRY_MAX_DELAY,
    maxPageBytes: parsed.CPQ_MAX_PAGE_BYTES,
    exportFormat: parsed.CPQ_EXPORT_FORMAT,
    zip: {
      maxBytes: parsed.CPQ_ZIP_MAX_BYTES,
      maxEntries: parsed.CPQ_ZIP_MAX_ENTRIES,
      maxRatio: parsed.CPQ_ZIP_MAX_RATIO,
      maxTotalBytes: parsed.CPQ_ZIP_MAX_TOTAL_BYTES,
      downloadTimeoutMs: parsed.CPQ_ZIP_DOWNLOAD_TIMEOUT,
      tmpDir: parsed.TMPDIR,
    },
  };
}

/**
 * `env` without the settings of a real site: every CPQ_* and ALERT_* variable. The demo syncs its
 * own simulated sites, and a production .env beside it must not send their alerts anywhere, nor
 * stop it with a mistake of its own (review HK: an invalid CPQ_PAGE_SIZE ended the demo, exit 2).
 */
export function withoutSiteSettings(env: Env): Env {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('CPQ_') && !k.startsWith('ALERT_')));
}

/** Reads and validates the configuration; every problem is reported, all in one line (separated by ;). */
export function loadConfig(env: Env = process.env): AppConfig {
  const mistakes = new Mistakes();
  const parsed = mistakes.parse(env);
  const scheduleErrors = ownSiteScheduleProblems(env);
  if (scheduleErrors.length > 0) mistakes.add(ConfigError.listing(scheduleErrors));
  // With a sites file, the environment's CPQ settings are only the defaults its sites inherit: an
  // incomplete set (no CPQ_BASE_URL, say) is not an error there.
  const cpq = parsed.CPQ_SITES_FILE ? undefined : mistakes.attempt(() => cpqConfigFrom(env, parsed))?.value;
  const sitesFile = parsed.CPQ_SITES_FILE;
  // Unset, DATABASE_URL means the embedded Postgres in DATA_DIR: a misspelt one would sync every
  // user into a database on this machine no one looks at, every run succeeding.
  const misspelt = unknownNames(env, new Set()).find((v) => v.near === 'DATABASE_URL');
  if (!parsed.DATABASE_URL && misspelt) {
    mistakes.add(
      new ConfigError(
        `${misspelt.name} is set but DATABASE_URL is not: did you mean DATABASE_URL? Without it cpq-sync uses an embedded Postgres in DATA_DIR (${parsed.DATA_DIR}), not your database; rename the variable, or unset ${misspelt.name} to use the embedded one`,
      ),
    );
  }
  mistakes.attempt(() => refuseForeignExtraCaCertificates(env));
  // Refused at start as well as at every connection (DatabaseClient): one line, exit code 2.
  const foreignCertificate = parsed.DATABASE_URL ? foreignDatabaseCertificate(parsed.DATABASE_URL) : undefined;
  if (foreignCertificate !== undefined) mistakes.add(new ConfigError(`DATABASE_URL: ${foreignCertificate}`));
  if (parsed.HTTP_HOST !== undefined && parsed.HTTP_PORT === undefined) {
    mistakes.add(new ConfigError('HTTP_HOST is set but HTTP_PORT is not: set the port too, or neither (no health server)'));
  }
  const schedule = { cron: parsed.SYNC_CRON, timezone: parsed.SYNC_TIMEZONE };
  const alerts = mistakes.attempt(() => alertsConfigFrom(env, parsed))?.value;
  // The variables the sites file names (${NAME}) are read too: not unknown ones.
  const named = new Set<string>();
  const fromFile = sitesFile ? mistakes.attempt(() => loadSitesFile(sitesFile, env, named))?.value : undefined;
  mistakes.throwAny();
  const sites: SiteConfig[] = fromFile ? fromFile.sites : cpq ? [{ name: DEFAULT_SITE, cpq, ...schedule, alerts: alerts!.rules }] : [];
  return {
    ...(parsed.DATABASE_URL ? { databaseUrl: parsed.DATABASE_URL } : {}),
    dataDir: parsed.DATA_DIR,
    embeddedPort: parsed.EMBEDDED_PG_PORT,
    lockTimeoutMs: parsed.SYNC_LOCK_TIMEOUT,
    connectTimeoutMs: parsed.DATABASE_CONNECT_TIMEOUT,
    ...(cpq ? { cpq } : {}),
    sites,
    lookbackMs: parsed.SYNC_LOOKBACK,
    fullEveryMs: parsed.SYNC_FULL_EVERY,
    maxDeleteFraction: parsed.SYNC_MAX_DELETE_FRACTION,
    massDeleteMin: parsed.SYNC_MASS_DELETE_MIN,
    mergeBatchUsers: parsed.SYNC_MERGE_BATCH_USERS,
    directFirstLoad: parsed.SYNC_DIRECT_FIRST_LOAD,
    ...(parsed.HISTORY_RETENTION === undefined ? {} : { historyRetentionMs: parsed.HISTORY_RETENTION }),
    worker: {
      ...schedule,
      siteConcurrency: parsed.SYNC_SITE_CONCURRENCY,
      staleAfterMs: parsed.SYNC_STALE_AFTER,
      shutdownTimeoutMs: parsed.SHUTDOWN_TIMEOUT,
      httpPort: parsed.HTTP_PORT === undefined ? undefined : Number(parsed.HTTP_PORT),
      httpHost: parsed.HTTP_HOST,
    },
    logLevel: parsed.LOG_LEVEL,
    logFormat: parsed.LOG_FORMAT,
    alerts: alerts!,
    unknownVariables: unknownVariables(env, named),
    typosBesideTheirVariable: typosBesideTheirVariable(env, named),
    warnings: [...(fromFile?.warnings ?? []), ...secretFilesOthersMayRead(env)],
  };
}

/** Variables read before the configuration is: by the .env loader (src/dotenv-file.ts). */
const DOTENV_VARIABLES = ['DOTENV_CONFIG_PATH', 'DOTENV_CONFIG_OVERRIDE', 'DOTENV_CONFIG_ENCODING', 'DOTENV_KEY'];
/** Prefixes no other program's variables are likely to share: an unknown name under one is a mistake. */
const OWN_PREFIXES = /^(CPQ|SYNC|ALERT|HISTORY|EMBEDDED_PG)_/;
/**
 * What Kubernetes sets in every container for each service of its namespace: a service named
 * cpq-sync gives CPQ_SYNC_SERVICE_HOST, CPQ_SYNC_PORT_8080_TCP_ADDR and the like. Not a typo.
 */
const SERVICE_LINKS = /_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)?)$/;

/**
 * The variables of `env` that cpq-sync does not read but that look like its own, each named in a
 * line. A misspelt one (HISTORY_RETENTON) would otherwise leave its setting at its default, here
 * no retention at all, without a word. Names only: a variable's name is never a secret.
 */
export function unknownVariables(env: Env, named: ReadonlySet<string> = new Set()): string[] {
  return unknownNames(env, named).map(describeUnknown);
}

/** Of unknownVariables, the typos whose variable is set too: CPQ_COMPANYS beside CPQ_COMPANIES (empty or blank is unset, as every setting reads it: review JI). */
function typosBesideTheirVariable(env: Env, named: ReadonlySet<string>): { name: string; variable: string }[] {
  return unknownNames(env, named).flatMap(({ name, near }) => (near !== undefined && env[near]?.trim() ? [{ name, variable: near }] : []));
}

/**
 * What a configuration error adds: the variables set that are typos of one cpq-sync reads (the
 * typo is often the error's cause: CPQ_PASWORD leaves CPQ_PASSWORD unset), worded as
 * unknownVariables words them.
 */
export function likelyTypos(env: Env, except: (typo: { name: string; near?: string }) => boolean = () => false): string[] {
  return unknownNames(env, new Set())
    .filter((v) => v.near !== undefined && !except(v))
    .map(describeUnknown);
}

/**
 * A configuration error's message with the likely typos of `env` after it, in one line's parts;
 * not one the message already asks about (DATABSE_URL set, DATABASE_URL not: "did you mean DATABASE_URL?").
 */
export function withLikelyTypos(message: string, env: Env): string {
  return [message, ...likelyTypos(env, (v) => message.includes(v.name) && message.includes(`did you mean ${v.near}?`))].join('; ');
}

function describeUnknown({ name, near }: { name: string; near?: string }): string {
  return near === undefined
    ? `${name} is not a variable cpq-sync reads (see the Configuration section of the README)`
    : `${name} is not a variable cpq-sync reads: did you mean ${near}?`;
}

function unknownNames(env: Env, named: ReadonlySet<string>): { name: string; near?: string }[] {
  const known = [...Object.keys(envSchema.shape), ...DOTENV_VARIABLES];
  const out: { name: string; near?: string }[] = [];
  for (const name of Object.keys(env).sort()) {
    // Variable names are case-sensitive, so history_retention is not HISTORY_RETENTION: compared in upper case.
    const upper = name.toUpperCase();
    if (known.includes(name) || named.has(name) || !/^[A-Z][A-Z0-9_]{5,}$/.test(upper)) continue;
    const near = nearMiss(name, known);
    const serviceLink = SERVICE_LINKS.test(upper);
    // A typo first (HTPP_PORT), then what Kubernetes sets, then a name under our prefixes. A
    // service link a letter longer or shorter than ours is another program's (HTTPS_PORT).
    if (near !== undefined && !(serviceLink && name.length !== near.length)) out.push({ name, near });
    else if (OWN_PREFIXES.test(upper) && !serviceLink) out.push({ name });
  }
  return out;
}

/**
 * The address a site's rows are read from, as cpq.sites.cpq_url records it: the root of its REST
 * API, the base URL's scheme, host, port and path followed by CPQ_PATH_PREFIX, in the form URL
 * gives them (host in lower case and without a trailing dot, no default port, no trailing slash),
 * so that spelling the same root another way (`https://cpq.example.com/cpq` with no prefix, or
 * `https://cpq.example.com` with `/cpq`) is no move.
 */
export function siteCpqUrl(baseUrl: string, pathPrefix = ''): string {
  const url = new URL(baseUrl);
  url.hostname = url.hostname.replace(/\.$/, '');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}${pathPrefix}`.replace(/\/+$/, '');
}

/**
 * The sites of CPQ_SITES_FILE, each validated by the environment's rules with its settings laid
 * over the environment. Every mistake of every site is reported at once, named by site and key.
 */
function loadSitesFile(file: string, env: Env, used: Set<string>): { sites: SiteConfig[]; warnings: string[] } {
  const { sites: overlays, errors, warnings } = readSiteOverlays(file, env, used);
  // A bad value a site takes from the environment is the environment's mistake: named once, by its
  // variable, not once per site under a key the site does not have.
  const environmentErrors = new Set<string>();
  const sites: SiteConfig[] = [];
  for (const overlay of overlays) {
    const where = `CPQ_SITES_FILE: site "${overlay.name}"`;
    // Each part read on its own: a bad credential does not hide a bad cron of the same site.
    const mistakes = new Mistakes();
    const parsed = mistakes.parse(overlay.env);
    const cpq = mistakes.attempt(() => cpqConfigFrom(overlay.env, parsed));
    // Not through siteKeysIn below, which would name CPQ_BASE_URL by the site's key too.
    if (cpq && !cpq.value && !overlay.unset.has('CPQ_BASE_URL') && !mistakes.refuses('CPQ_BASE_URL')) {
      errors.push(`${where}, baseUrl: required (or CPQ_BASE_URL in the environment)`);
    }
    // Read from the site's own text: a bad baseUrl, which the schema refuses, does not hide it.
    const schedule = SCHEDULE_SCHEMA.parse(overlay.env);
    const scheduleErrors = scheduleProblems(schedule.SYNC_CRON, schedule.SYNC_TIMEZONE);
    if (scheduleErrors.length > 0) mistakes.add(ConfigError.listing(scheduleErrors));
    const alerts = mistakes.attempt(() => alertRuleSettingsFrom(parsed));
    const problems = mistakes.problems;
    if (cpq?.value && alerts && problems.length === 0) {
      const siteCpq: CpqConfig = overlay.ownAuth ? { ...cpq.value, authInSitesFile: true } : cpq.value;
      sites.push({ name: overlay.name, cpq: siteCpq, cron: parsed.SYNC_CRON, timezone: parsed.SYNC_TIMEZONE, alerts: alerts.value });
    }
    for (const problem of problems) {
      // "CPQ_PASSWORD … is required" after "password: ${EMEA_PASSWORD} … not set" would say it twice.
      if (overlay.unset.has(/^[A-Z][A-Z0-9_]*/.exec(problem)?.[0] ?? '')) continue;
      // So would "OAuth client credentials need oauth.clientSecret" after "oauth.clientSecret: ${…} … not set".
      const named = problem.match(/\bCPQ_[A-Z0-9_]+\b/g) ?? [];
      if (problem.startsWith('OAuth client credentials need ') && named.every((v) => overlay.unset.has(v))) continue;
      const variable = /^([A-Z][A-Z0-9_]*): /.exec(problem)?.[1];
      if (variable !== undefined && !overlay.own.has(variable) && env[variable] !== undefined) environmentErrors.add(problem);
      else errors.push(`${where}, ${siteKeysIn(problem)}`);
    }
  }
  errors.push(...environmentErrors);
  if (errors.length) throw ConfigError.listing(errors);
  // A site's own secret files (passwordFile, …): those it takes from the environment are named once, by loadConfig.
  const readable = overlays.flatMap((overlay) =>
    secretFilesOthersMayRead(
      overlay.env,
      SECRET_FILE_VARIABLES.filter((variable) => overlay.own.has(variable)),
    ).map((warning) => `CPQ_SITES_FILE: site "${overlay.name}", ${siteKeysIn(warning)}`),
  );
  return { sites, warnings: [...warnings, ...readable, ...sitesReadingOneCpq(sites)] };
}

/**
 * Two sites reading the same CPQ and some of the same companies: each stores those users as its
 * own, every user twice (two locks, two histories). Maybe meant (a site renamed, kept a while), so
 * said at every start, not refused.
 */
function sitesReadingOneCpq(sites: readonly SiteConfig[]): string[] {
  const warnings: string[] = [];
  sites.forEach((site, i) => {
    const url = siteCpqUrl(site.cpq.baseUrl, site.cpq.pathPrefix);
    const shares = (other: SiteConfig) =>
      siteCpqUrl(other.cpq.baseUrl, other.cpq.pathPrefix) === url &&
      (site.cpq.companies.includes('*') || other.cpq.companies.includes('*') || site.cpq.companies.some((c) => other.cpq.companies.includes(c)));
    const earlier = sites.slice(0, i).find(shares);
    if (earlier) {
      warnings.push(
        `CPQ_SITES_FILE: sites "${earlier.name}" and "${site.name}" both read ${url} and some of the same companies: each stores those users as its own, every user twice; remove one, or give each its own companies`,
      );
    }
  });
  return warnings;
}

/** SYNC_CRON and SYNC_TIMEZONE alone, with their defaults (never fails: both are any text). */
const SCHEDULE_SCHEMA = envSchema.pick({ SYNC_CRON: true, SYNC_TIMEZONE: true });

/**
 * What is wrong with the schedule of the environment's own site (no sites file, CPQ_BASE_URL set),
 * read apart from its other settings as a sites file's site's schedule is: every command refuses a
 * schedule `schedule` would, with a sites file or without, and a bad URL does not hide it.
 */
function ownSiteScheduleProblems(env: Env): string[] {
  if (env.CPQ_SITES_FILE?.trim() || !env.CPQ_BASE_URL?.trim()) return [];
  const schedule = SCHEDULE_SCHEMA.parse(env);
  return scheduleProblems(schedule.SYNC_CRON, schedule.SYNC_TIMEZONE);
}

/**
 * What is wrong with a schedule, one problem per variable: none when node-cron and Intl take
 * both. The worker checks its schedule with this (validateSchedule) as the sites file does.
 */
export function scheduleProblems(cron: string, timezone: string): string[] {
  const problems: string[] = [];
  const check = validateDetailed(cron);
  // Joined with commas: a configuration error's problems are joined with semicolons.
  if (!check.valid) problems.push(`SYNC_CRON: "${cron}" is not a cron expression: ${check.errors.map(cronErrorText).join(', ')}`);
  if (!isTimeZone(timezone)) problems.push(`SYNC_TIMEZONE: "${timezone}" is not an IANA time zone such as UTC or Europe/Berlin`);
  return problems;
}

/** Each field of a cron expression, as cron(5) names it, with the values it takes. */
const CRON_FIELDS: Record<string, { name: string; one: string; values: string }> = {
  second: { name: 'second', one: 'a second', values: '0-59' },
  minute: { name: 'minute', one: 'a minute', values: '0-59' },
  hour: { name: 'hour', one: 'an hour', values: '0-23' },
  dayOfMonth: { name: 'day of month', one: 'a day of month', values: '1-31' },
  month: { name: 'month', one: 'a month', values: '1-12 or jan-dec' },
  dayOfWeek: { name: 'day of week', one: 'a day of week', values: '0-7 or sun-sat' },
};

/** The nicknames node-cron takes in place of the fields. */
const CRON_NICKNAMES = '@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly';

/**
 * One of node-cron's reasons in the operator's words: its own say "25 is a invalid expression for
 * hour", naming neither the values the field takes nor the fields an expression has (review EG).
 */
function cronErrorText(error: { field: string; value?: string; message: string }): string {
  const field = CRON_FIELDS[error.field];
  const five = 'five (minute hour day-of-month month day-of-week) or six with a second first';
  // node-cron calls an empty expression one of illegal characters, and a blank one a field of its own.
  if (error.field === 'expression' && error.value?.trim() === '') return `it is empty: a cron expression has ${five}`;
  const fields = /^expected 5 or 6 fields but got (\d+)$/.exec(error.message);
  if (fields) return `it has ${fields[1]} field${fields[1] === '1' ? '' : 's'}, not ${five}`;
  // node-cron takes an @ only in a whole nickname: another is refused as an illegal character.
  if (error.message === 'pattern includes illegal characters' && error.value?.trim().startsWith('@')) return `it is not one of the nicknames ${CRON_NICKNAMES}`;
  if (error.message === 'pattern includes illegal characters')
    return 'it holds a character no cron field takes (they take letters, digits and * , - / # ? only)';
  const impossible = /^(\S+) (\S+) is an impossible day of month/.exec(error.message);
  if (impossible) return `day of month ${impossible[1]} never comes in month ${impossible[2]}`;
  if (field === undefined || error.value === undefined) return error.message;
  return `${field.name} "${error.value}" is not ${field.one} (${field.values}, as numbers, ranges a-b, lists a,b, * or steps */n)`;
}

function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The configuration with `patch` laid over the CPQ settings of every site (and of the environment's). */
export function withCpq(config: AppConfig, patch: Partial<CpqConfig>): AppConfig {
  return {
    ...config,
    ...(config.cpq ? { cpq: { ...config.cpq, ...patch } } : {}),
    sites: config.sites.map((site) => ({ ...site, cpq: { ...site.cpq, ...patch } })),
  };
}

const NO_SITE = 'CPQ_BASE_URL is not set: name the CPQ site to sync, e.g. https://mysite.bigmachines.com (or several in CPQ_SITES_FILE)';

/**
 * The configured sites named in `names` (all of them when `names` is empty), in configuration
 * order; a name no site has is an error.
 */
export function selectSites(config: AppConfig, names: readonly string[] = []): SiteConfig[] {
  if (config.sites.length === 0) throw new ConfigError(NO_SITE);
  const unknown = names.filter((n) => !config.sites.some((s) => s.name === n));
  if (unknown.length) {
    throw new ConfigError(`--site: no site is named ${unknown.map((n) => `"${n}"`).join(', ')} (sites: ${config.sites.map((s) => s.name).join(', ')})`);
  }
  return names.length ? config.sites.filter((s) => names.includes(s.name)) : config.sites;
}

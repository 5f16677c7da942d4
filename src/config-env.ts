import { z } from 'zod';
import { parseConnectionUrl } from './connection-url.js';

/*
 * The environment variables and how each is read: their defaults, and the rule each value must
 * follow (src/config.ts turns the result into the configuration, with the checks that involve
 * several variables). A site of CPQ_SITES_FILE is read by these same rules.
 */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `10m`, `90s`, `1h`, `7d`, `250ms`; a bare number means seconds. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  return Math.round(Number(match[1]) * UNIT_MS[match[2] ?? 's']!);
}

/**
 * The longest wait a Node timer keeps (setTimeout and setInterval take anything longer for 1 ms,
 * with a warning): the bound of every duration that becomes a timer or a Postgres timeout.
 */
export const LONGEST_TIMER_MS = 2 ** 31 - 1;
/** The bound of the durations that only move dates (a lookback, a retention): a century, well inside what Date and Postgres hold. */
const LONGEST_SPAN_MS = 100 * 365 * 86_400_000;

/** A duration the way an operator writes one (`36h`, `90s`, `250ms`): in the largest unit that keeps it whole. */
export function durationSetting(ms: number): string {
  if (ms > 0) for (const unit of ['d', 'h', 'm'] as const) if (ms % UNIT_MS[unit]! === 0) return `${ms / UNIT_MS[unit]!}${unit}`;
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Shows a bound of a duration's rule the way an operator writes one. */
function shownMs(ms: number): string {
  return ms === LONGEST_TIMER_MS ? `${ms}ms (about 24.8 days, the longest wait a timer keeps)` : durationSetting(ms);
}

/**
 * A duration from `min` to `max` ms (both inclusive): a timer's by default, 1 ms at the least,
 * since 0 would fire at once (or, as a Postgres lock_timeout, mean no limit at all).
 */
const duration = (fallback: string, { min = 1, max = LONGEST_TIMER_MS }: { min?: number; max?: number } = {}) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration such as 90s, 10m, 1h or 7d` });
        return z.NEVER;
      }
      if (ms < min || ms > max) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration from ${shownMs(min)} to ${shownMs(max)}` });
        return z.NEVER;
      }
      return ms;
    });

/** A duration that only moves dates, never a timer: up to a century. */
const span = (fallback: string, min = 0) => duration(fallback, { min, max: LONGEST_SPAN_MS });

const integer = (fallback: number, min: number, max: number) =>
  z
    .string()
    .default(String(fallback))
    .transform((text, ctx) => {
      const value = Number(text);
      if (!/^\d+$/.test(text.trim()) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a whole number from ${min} to ${max}` });
        return z.NEVER;
      }
      return value;
    });

/** A yes/no setting's value (true, 1, yes, on; false, 0, no, off or empty; any case, spaces around), or undefined for other text. */
export function flagValue(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(t)) return true;
  if (['false', '0', 'no', 'off', ''].includes(t)) return false;
  return undefined;
}

const flag = z
  .string()
  .default('false')
  .transform((text, ctx) => {
    const value = flagValue(text);
    if (value !== undefined) return value;
    ctx.addIssue({ code: 'custom', message: `"${text}" is not true or false` });
    return z.NEVER;
  });

const optionalText = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/**
 * The parameters whose values may hold an `@` of their own (atAfterHost): logins, names, and the
 * files node-postgres reads a certificate or key from (`sslcert=/etc/cpq/client@db1.crt`, review
 * IZ). It reads names as written.
 */
const AT_IN_VALUE = new Set(['user', 'password', 'application_name', 'fallback_application_name', 'options', 'sslcert', 'sslkey', 'sslrootcert']);
/** Of them, the files: a path goes on with a / after its @ (`/run/credentials/cpq-sync@prod.service/ca.pem`, a systemd template unit's; review JA). */
const FILE_PARAMETERS = new Set(['sslcert', 'sslkey', 'sslrootcert']);

/**
 * Whether a URL holds an `@` past its authority where a password's rest would put it: a password
 * with an unescaped `/`, `?` or `#` ends the authority early (`postgres://sync:2024/Spring@db/app`
 * is the host `sync`, port 2024), and what follows, password included, is no URL's password, so no
 * message hid it. So an `@` in the path or fragment, in a query parameter's name, or in a value
 * that goes on with a `/` or `:` as a host's would (`?x=pw@db/app`; a file's path aside). A value
 * such as Azure's `user=admin@server` or `application_name=sync@prod` is left alone after a
 * database name (review HP), but not in a query straight after the host:
 * `postgres://sync:2024?Spring=Summer9@db` (a password of digits, or none, then `?name=value`)
 * reads as the host `sync`, port 2024, and a parameter `Spring`, which nothing takes for a secret
 * (review IM); nor in a parameter node-postgres gives no meaning to, after a database name too
 * (`postgres://sync:2024/x?Spring=Summer9@db`): only AT_IN_VALUE's may hold one. Such a value can
 * be written `admin%40server`, which node-postgres decodes, so refusing it costs no connection.
 */
function atAfterHost(url: string): boolean {
  const authority = url.slice(url.indexOf('//') + 2);
  const end = authority.search(/[/?#]/);
  if (end < 0) return false;
  const rest = authority.slice(end);
  const [beforeFragment = '', fragment] = rest.split(/#(.*)/s);
  if (fragment?.includes('@')) return true;
  const [path = '', query = ''] = beforeFragment.split(/\?(.*)/s);
  if (path.includes('@')) return true;
  // `/` alone names no database either (node-postgres reads it as none).
  const noDatabase = path.length <= 1;
  return query.split('&').some((parameter) => {
    const equals = parameter.indexOf('=');
    const [name, value] = equals < 0 ? [parameter, ''] : [parameter.slice(0, equals), parameter.slice(equals + 1)];
    if (name.includes('@')) return true;
    return value.includes('@') && (noDatabase || !AT_IN_VALUE.has(name) || (!FILE_PARAMETERS.has(name) && /@.*[/:]/s.test(value)));
  });
}

export const envSchema = z.object({
  // Checked here, as CPQ_BASE_URL is, so that a URL Node cannot read (a port above 65535) is bad configuration, named, not a database failure; never echoed (it may hold a password).
  DATABASE_URL: optionalText
    // libpq's other form: node-postgres read it as a host name ("getaddrinfo ENOTFOUND base"), with a hint about DNS (review EC).
    .refine((v) => v === undefined || !/^\s*[a-z_]+\s*=/i.test(v), {
      error: 'is a key=value connection string (host=… dbname=…), which is not read: write it as a URL, postgres://user:password@host:5432/database',
    })
    // Another scheme, or `postgres:` without `//`: node-postgres reads what it can of it (a host named
    // like the user), and a password in it is no URL's password, so it was printed whole (review HM).
    .refine((v) => v === undefined || /^\s*[a-z_]+\s*=/i.test(v) || /^postgres(ql)?:\/\//i.test(v), {
      error: 'is not a postgres:// URL: write it as postgres://user:password@host:5432/database',
    })
    .refine((v) => v === undefined || !/^postgres(ql)?:\/\//i.test(v) || parseConnectionUrl(v) !== undefined, {
      error: 'is not a URL Node can read (a port above 65535, a space in the host, a password with an unescaped @ or /?)',
    })
    .refine((v) => v === undefined || !/^postgres(ql)?:\/\//i.test(v) || !atAfterHost(v), {
      error:
        'holds an @ after its host: a password (or user name) with an unescaped /, ? or # in it; escape them as %2F, %3F and %23 (and an @ in a query value with no /database before the ?, or of a parameter that takes no login, name or file, as %40)',
    }),
  // Longest a new database connection may take to be made: a server that accepts and never answers held every command for ever.
  DATABASE_CONNECT_TIMEOUT: duration('60s'),
  // Empty is unset: '' would put the embedded database in ./pg, a new and empty one.
  DATA_DIR: optionalText.transform((v) => v ?? './.data'),
  EMBEDDED_PG_PORT: integer(54329, 1024, 65535),

  CPQ_BASE_URL: optionalText.refine((v) => v === undefined || /^https?:\/\/[^/\s]+/i.test(v), {
    error: 'must be an http(s) URL such as https://mysite.bigmachines.com',
  }),
  CPQ_PATH_PREFIX: z
    .string()
    .default('')
    .transform((v) => v.trim().replace(/\/+$/, ''))
    .refine((v) => v === '' || v === '/cpq', { error: 'must be empty (classic site) or /cpq (Fusion site)' }),
  CPQ_COMPANIES: z
    .string()
    .default('_host')
    .transform((v) =>
      v
        .split(',')
        .map((c) => c.trim())
        .filter((c) => c !== ''),
    )
    .refine((list) => list.length > 0, { error: 'must name at least one company, or *' })
    // Read twice, a company's users would be written twice in one run (a key violation at its end).
    .superRefine((list, ctx) => {
      const twice = list.filter((c, i) => list.indexOf(c) !== i);
      if (twice.length > 0) ctx.addIssue({ code: 'custom', message: `names ${[...new Set(twice)].map((c) => JSON.stringify(c)).join(', ')} twice` });
    })
    .refine((list) => list.every((c) => c !== '.' && c !== '..' && !/[/\\]/.test(c)), {
      error: 'company login names cannot be ".", ".." or hold / or \\ (they become part of URL paths)',
    }),
  CPQ_HOST_COMPANY: optionalText,
  CPQ_INTEGRATION_USERS: z.enum(['auto', 'on', 'off']).default('auto'),

  CPQ_USERNAME: optionalText,
  CPQ_PASSWORD: optionalText,
  CPQ_PASSWORD_FILE: optionalText,
  CPQ_TOKEN: optionalText,
  CPQ_TOKEN_FILE: optionalText,
  CPQ_OAUTH_TOKEN_URL: optionalText,
  CPQ_OAUTH_CLIENT_ID: optionalText,
  CPQ_OAUTH_CLIENT_SECRET: optionalText,
  CPQ_OAUTH_CLIENT_SECRET_FILE: optionalText,
  CPQ_OAUTH_SCOPE: optionalText,

  CPQ_CA_FILE: optionalText,
  CPQ_ALLOW_INSECURE_HTTP: flag,

  CPQ_PAGE_SIZE: integer(1000, 1, 1000),
  CPQ_CONCURRENCY: integer(4, 1, 64),
  CPQ_MAX_IN_FLIGHT: integer(4, 1, 64),
  CPQ_KEY_RANGES: integer(8, 1, 64),
  CPQ_SPLIT_SLOWER_THAN: duration('1s', { min: 0 }),
  CPQ_REQUEST_TIMEOUT: duration('60s'),
  CPQ_MAX_RETRIES: integer(6, 0, 50),
  CPQ_RETRY_BASE_DELAY: duration('500ms', { min: 0 }),
  CPQ_RETRY_MAX_DELAY: duration('60s', { min: 0 }),
  CPQ_MAX_PAGE_BYTES: integer(16 * 1024 ** 2, 64 * 1024, 1024 ** 3),

  SYNC_LOOKBACK: span('10m'),
  SYNC_FULL_EVERY: span('7d'),
  SYNC_MERGE_BATCH_USERS: integer(10000, 0, 10_000_000),
  SYNC_DIRECT_FIRST_LOAD: flag.default(true),
  SYNC_MASS_DELETE_MIN: integer(1, 0, 10_000_000),
  SYNC_MAX_DELETE_FRACTION: z
    .string()
    .default('0.2')
    .transform((text, ctx) => {
      const value = Number(text);
      if (text.trim() === '' || !Number.isFinite(value) || value < 0 || value > 1) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a fraction from 0 to 1` });
        return z.NEVER;
      }
      return value;
    }),

  CPQ_EXPORT_FORMAT: z.enum(['json', 'zip']).default('json'),
  CPQ_ZIP_MAX_BYTES: integer(4 * 1024 ** 3, 1024, Number.MAX_SAFE_INTEGER),
  CPQ_ZIP_MAX_ENTRIES: integer(1000, 1, 1_000_000),
  CPQ_ZIP_MAX_RATIO: integer(200, 2, 100_000),
  CPQ_ZIP_MAX_TOTAL_BYTES: integer(16 * 1024 ** 3, 1024, Number.MAX_SAFE_INTEGER),
  CPQ_ZIP_DOWNLOAD_TIMEOUT: duration('2h'),
  TMPDIR: optionalText,

  CPQ_SITES_FILE: optionalText,
  SYNC_SITE_CONCURRENCY: integer(2, 1, 64),
  // Read by src/heap-growth.ts at start-up, before any command; here so that loadConfig names a bad value.
  SYNC_HEAP_GROWING_PERCENT: integer(200, 0, 1000),
  SYNC_CRON: z.string().default('0 2 * * *'),
  SYNC_TIMEZONE: z.string().default('UTC'),
  SYNC_STALE_AFTER: span('36h'),
  SYNC_LOCK_TIMEOUT: duration('30m'),
  // Off unless set: personal fields of history older than this are redacted by every run.
  HISTORY_RETENTION: optionalText.transform((text, ctx) => {
    // Any case, as the yes/no settings read `off` (flagValue).
    if (text === undefined || text.toLowerCase() === 'off') return undefined;
    // A unit is required: a bare 400, read as seconds by the rule of the other durations, would redact personal data after minutes.
    const ms = /^\s*[\d.]+\s*$/.test(text) ? undefined : parseDuration(text);
    if (ms === undefined || ms <= 0 || ms > LONGEST_SPAN_MS) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration with a unit such as 400d (up to ${shownMs(LONGEST_SPAN_MS)}), or off` });
      return z.NEVER;
    }
    return ms;
  }),
  SHUTDOWN_TIMEOUT: duration('30s'),
  HTTP_PORT: optionalText.refine((v) => v === undefined || (/^\d+$/.test(v) && Number(v) <= 65535), {
    error: 'must be a TCP port number',
  }),
  HTTP_HOST: optionalText,

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),

  // Alerts (alertsConfigFrom). The URL of a Slack webhook is itself a credential: read like a secret.
  ALERT_WEBHOOK_URL: optionalText,
  ALERT_WEBHOOK_URL_FILE: optionalText,
  ALERT_WEBHOOK_SECRET: optionalText,
  ALERT_WEBHOOK_SECRET_FILE: optionalText,
  ALERT_WEBHOOK_TIMEOUT: duration('10s'),
  // Empty is unset, as for the other variables (a blank Compose or Helm value): every rule.
  ALERT_RULES: optionalText.transform((v) => v ?? 'all'),
  ALERT_GROUPS: z.string().default(''),
  ALERT_RETRY_BASE_DELAY: span('1m'),
  ALERT_RETRY_MAX_DELAY: span('1h'),
  // How often a worker looks for alerts due: 0 would poll the database without pause.
  ALERT_RETRY_EVERY: duration('1m', { min: 100 }),
  // How many alerts one run sends: CPQ data chose how many a run raised, without bound (review IA).
  ALERT_MAX_PER_RUN: integer(100, 1, 1_000_000),
});

/** The environment as validated, each value converted (durations in ms, flags as booleans, ...). */
export type ParsedEnv = z.infer<typeof envSchema>;

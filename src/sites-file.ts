import type { Stats } from 'node:fs';
import type * as Yaml from 'yaml';
import { errorCode, relativeToWorkingDirectory } from './errors.js';
import { ConfigFileRefused, foreignWriterRefusal, othersMayRead, readOwnConfigFile } from './foreign-writer.js';
import { requireWhenUsed } from './require-when-used.js';
import { nearMiss } from './near-miss.js';

/*
 * CPQ_SITES_FILE: a JSON or YAML list of sites. Each site is read into the environment variables
 * it stands for (baseUrl → CPQ_BASE_URL, …) laid over the process environment, so that a site is
 * validated by exactly the rules of the environment (src/config.ts) and every setting it leaves
 * out takes the environment's value. Errors are then named by site and key, not by variable.
 */

/**
 * A site's name: its key in every table, so kept to what needs no quoting anywhere; it starts
 * with a letter or digit, so that `--site NAME` is never read as an option.
 */
const SITE_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/** A sites file larger than this is refused before it is read (hundreds of sites take a few KB each). */
const MAX_FILE_BYTES = 1024 * 1024;

/** The keys a site may hold at its top level, and the variable each stands for (README "Several sites" lists them: test/sites.test.ts). */
export const SITE_KEYS: Record<string, string> = {
  baseUrl: 'CPQ_BASE_URL',
  pathPrefix: 'CPQ_PATH_PREFIX',
  companies: 'CPQ_COMPANIES',
  hostCompany: 'CPQ_HOST_COMPANY',
  integrationUsers: 'CPQ_INTEGRATION_USERS',
  exportFormat: 'CPQ_EXPORT_FORMAT',
  caFile: 'CPQ_CA_FILE',
  cron: 'SYNC_CRON',
  timezone: 'SYNC_TIMEZONE',
  alertRules: 'ALERT_RULES',
  alertGroups: 'ALERT_GROUPS',
  username: 'CPQ_USERNAME',
  password: 'CPQ_PASSWORD',
  passwordFile: 'CPQ_PASSWORD_FILE',
  token: 'CPQ_TOKEN',
  tokenFile: 'CPQ_TOKEN_FILE',
};
/** The keys of a site's `oauth` object. */
export const OAUTH_KEYS: Record<string, string> = {
  tokenUrl: 'CPQ_OAUTH_TOKEN_URL',
  clientId: 'CPQ_OAUTH_CLIENT_ID',
  clientSecret: 'CPQ_OAUTH_CLIENT_SECRET',
  clientSecretFile: 'CPQ_OAUTH_CLIENT_SECRET_FILE',
  scope: 'CPQ_OAUTH_SCOPE',
};
/** Every auth variable: a site that names any auth replaces the environment's auth whole. */
const AUTH_VARIABLES = ['CPQ_USERNAME', 'CPQ_PASSWORD', 'CPQ_PASSWORD_FILE', 'CPQ_TOKEN', 'CPQ_TOKEN_FILE', ...Object.values(OAUTH_KEYS)];

/** The site key a variable stands for, for error messages ("oauth.clientId" for CPQ_OAUTH_CLIENT_ID). */
const KEY_OF_VARIABLE = new Map<string, string>([
  ...Object.entries(SITE_KEYS).map(([key, variable]) => [variable, key] as [string, string]),
  ...Object.entries(OAUTH_KEYS).map(([key, variable]) => [variable, `oauth.${key}`] as [string, string]),
]);

/**
 * Rewrites the variable names in a message of the environment's validation into the site's keys.
 * With `authFromEnvironment` (a site that names no auth of its own takes the environment's), the
 * auth variables stay as they are: "username and password" sent an operator to a file that holds
 * neither.
 */
export function siteKeysIn(message: string, authFromEnvironment = false): string {
  return message.replace(/\b(?:CPQ|SYNC|ALERT)_[A-Z_]+\b/g, (name) =>
    authFromEnvironment && AUTH_VARIABLES.includes(name) ? name : (KEY_OF_VARIABLE.get(name) ?? name),
  );
}

export interface SiteOverlay {
  name: string;
  /** The process environment with the site's settings laid over it. */
  env: Record<string, string | undefined>;
  /** The variables the site's own settings set (the rest of env is the environment's). */
  own: ReadonlySet<string>;
  /** Whether the site's own settings name its auth (which then replaces the environment's whole). */
  ownAuth: boolean;
  /** The variables of settings whose `${NAME}` is not set: already reported, so not reported again as missing. */
  unset: ReadonlySet<string>;
}

type Env = Record<string, string | undefined>;

/**
 * Parses the file (JSON, or YAML, of which JSON is a subset) into a list of sites and what is
 * wrong with it; adds to `used` the environment variables its settings name (`${NAME}`).
 */
export function readSiteOverlays(file: string, env: Env, used?: Set<string>): { sites: SiteOverlay[]; errors: string[]; warnings: string[] } {
  let text: string;
  let stats: Stats;
  try {
    // Whoever may write it chooses each site's baseUrl, and which secrets go there (passwordFile
    // names any file this process reads, ${NAME} any variable of its environment): refused, as a .env is (review DM).
    const read = readOwnConfigFile(file, { maxBytes: MAX_FILE_BYTES })!;
    stats = read.file;
    text = read.bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigFileRefused && err.reason === 'foreign-writer') {
      const refusal = `CPQ_SITES_FILE: ${file}${err.problem}${foreignWriterRefusal('read it', 'chooses where credentials are sent')}`;
      return { sites: [], errors: [refusal], warnings: [] };
    }
    const problem =
      err instanceof ConfigFileRefused
        ? `${file}${err.problem}${err.reason === 'too-large' ? '; refused' : ''}`
        : `cannot read ${file} (${errorCode(err) ?? 'error'}${relativeToWorkingDirectory(file, err)})`;
    return { sites: [], errors: [`CPQ_SITES_FILE: ${problem}`], warnings: [] };
  }
  let document: unknown;
  let keyPlace: KeyPlace = () => undefined;
  try {
    // One parser for both: YAML 1.2 reads every JSON document. The failsafe schema keeps every
    // scalar the text it is written as (a password 0012345 or a token of 23 digits is not turned
    // into a number and back); maxAliasCount bounds alias expansion (a "billion laughs" file).
    // Problems are reported here, by their kind and place, and by yaml's words only where those
    // are fixed (yamlProblem): its messages quote the source (a tag, an escape sequence, the whole
    // line), which may be a password's, and its warnings would go to stderr as they are.
    const yaml = requireWhenUsed('yaml') as typeof Yaml;
    const lineCounter = new yaml.LineCounter();
    const parsed = yaml.parseDocument(text, { schema: 'failsafe', logLevel: 'silent', lineCounter });
    const problem = parsed.errors[0] ?? parsed.warnings[0];
    // A tag (!!int, !vault, …) is a problem too: the failsafe schema would take `!vault x` as the text "x".
    if (problem) throw problem;
    document = parsed.toJS({ maxAliasCount: 100 });
    keyPlace = keyPlacesOf(yaml, parsed, lineCounter);
  } catch (err) {
    return { sites: [], errors: [`CPQ_SITES_FILE: ${file} is not valid JSON or YAML (${yamlProblem(err, text)})`], warnings: [] };
  }
  // Beside "sites", a key (a "defaults:" block, say) would be read by nobody: refused rather than ignored.
  if (isRecord(document) && Array.isArray(document['sites'])) {
    const others = Object.keys(document).filter((key) => key !== 'sites');
    if (others.length > 0) {
      return {
        sites: [],
        errors: [
          `CPQ_SITES_FILE: ${file}: only "sites" is read at the top of the file, not ${others.map((k) => JSON.stringify(k)).join(', ')} (settings go in each site, or in the environment)`,
        ],
        warnings: [],
      };
    }
  }
  const list = isRecord(document) && Array.isArray(document['sites']) ? document['sites'] : document;
  if (!Array.isArray(list) || list.length === 0) {
    return { sites: [], errors: [`CPQ_SITES_FILE: ${file} must hold a non-empty list of sites (or an object whose "sites" is one)`], warnings: [] };
  }
  const errors: string[] = [];
  const sites: SiteOverlay[] = [];
  // A password, token or client secret written in the file itself (not a ${NAME} of the environment).
  const inline = { secret: false };
  // By lower case: emea and EMEA were two sites, each its own lock, every user stored twice.
  const seen = new Map<string, string>();
  list.forEach((entry: unknown, index) => {
    const where = (key?: string) => `CPQ_SITES_FILE: site ${siteLabel(entry, index)}${key ? `, ${key}` : ''}`;
    if (!isRecord(entry)) {
      errors.push(`${where()}: must be an object`);
      return;
    }
    const name = entry['name'];
    if (typeof name !== 'string' || !SITE_NAME.test(name)) {
      errors.push(`${where('name')}: required, 1 to 64 letters, digits, - or _, starting with a letter or digit`);
    } else if (seen.has(name.toLowerCase())) {
      const other = seen.get(name.toLowerCase())!;
      errors.push(`${where('name')}: another site has the same name${other === name ? '' : ` but for case (${other})`}`);
    } else {
      seen.set(name.toLowerCase(), name);
    }
    const overlay: Env = {};
    const unset = new Set<string>();
    const setting = (key: string, variable: string, value: unknown, line?: number) => {
      const text = settingText(value, key === 'companies');
      if (text === undefined) {
        errors.push(`${where(key)}: must be a string${key === 'companies' ? ' or a list of strings' : ''}`);
        return;
      }
      if (SECRET_KEYS.has(key) && !text.includes('${')) inline.secret = true;
      const expanded = expandVariables(text, env, used);
      if (typeof expanded !== 'string') {
        // A secret's text is not printed, not even the part of it that reads as a variable's name,
        // unless the setting is the reference alone, spelt as environment variables are
        // (`${EMEA_PASSWORD}`): a reference, not a password; hidden, the operator could not tell
        // which variable to set (review DN).
        const name = !SECRET_KEYS.has(key) || (text === `\${${expanded.missing}}` && ENV_NAME.test(expanded.missing)) ? expanded.missing : '…';
        errors.push(`${where(key)}${line === undefined ? '' : ` (line ${line})`}: \${${name}} names an environment variable that is not set`);
        unset.add(variable);
        return;
      }
      overlay[variable] = expanded;
    };
    for (const [at, [key, value]] of Object.entries(entry).entries()) {
      if (key === 'name') continue;
      if (key === 'oauth') {
        if (!isRecord(value)) {
          errors.push(`${where('oauth')}: must be an object with tokenUrl, clientId, clientSecret or clientSecretFile, and scope`);
          continue;
        }
        Object.entries(value).forEach(([oauthKey, oauthValue], at) => {
          const variable = OAUTH_KEYS[oauthKey];
          if (variable === undefined || !Object.hasOwn(OAUTH_KEYS, oauthKey))
            errors.push(unknownKey(where, oauthKey, keyPlace(index, 'oauth', oauthKey) ?? { at }, 'oauth.'));
          else setting(`oauth.${oauthKey}`, variable, oauthValue, keyPlace(index, 'oauth', oauthKey)?.line);
        });
        continue;
      }
      const variable = SITE_KEYS[key];
      if (variable === undefined || !Object.hasOwn(SITE_KEYS, key)) errors.push(unknownKey(where, key, keyPlace(index, key) ?? { at }, ''));
      else setting(key, variable, value, keyPlace(index, key)?.line);
    }
    // A site that names any auth replaces the environment's auth whole. One that names none takes
    // the environment's, unless the environment's belongs to another host (CPQ_BASE_URL): one
    // site's credentials are never sent to another's host.
    const namesAuth = Object.keys(overlay).some((variable) => AUTH_VARIABLES.includes(variable));
    const envAuth = AUTH_VARIABLES.filter((variable) => env[variable]?.trim());
    const siteOrigin = originOf(overlay['CPQ_BASE_URL'] ?? env['CPQ_BASE_URL']);
    if (!namesAuth && envAuth.length > 0 && env['CPQ_BASE_URL'] && siteOrigin !== originOf(env['CPQ_BASE_URL'])) {
      errors.push(
        `${where()}: names no credentials, and those of the environment (${envAuth.join(', ')}) belong to CPQ_BASE_URL, another host: give the site its own (username, token or oauth)`,
      );
    }
    const merged = namesAuth ? Object.fromEntries(Object.entries(env).filter(([variable]) => !AUTH_VARIABLES.includes(variable))) : env;
    if (typeof name === 'string') sites.push({ name, env: { ...merged, ...overlay }, own: new Set(Object.keys(overlay)), ownAuth: namesAuth, unset });
  });
  // Readable by another user, a file holding a secret gives it away: said at every start (the
  // default umask makes files so), not refused, since nothing else is wrong with it.
  const warnings =
    inline.secret && othersMayRead(stats)
      ? [
          `CPQ_SITES_FILE: ${file} holds a password, token or client secret and other users can read it (mode ${(stats.mode & 0o777).toString(8)}): chmod 600 it, or use passwordFile, tokenFile or oauth.clientSecretFile`,
        ]
      : [];
  return { sites, errors, warnings };
}

/** Settings whose text is a secret: never printed, in part or whole (but for a `${NAME}` that is the whole of it). */
const SECRET_KEYS = new Set(['password', 'token', 'oauth.clientSecret']);

/** An environment variable's name as one is spelt: capitals, digits and `_`. */
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** Every key a site may hold, at its top level or in its `oauth`. */
const ALL_KEYS = ['name', ...Object.keys(SITE_KEYS), 'oauth', ...Object.keys(OAUTH_KEYS)];

/**
 * The known key `text` begins with, followed by a colon and no space (`password:S3cret`: one
 * plain text to YAML, not a key and its value), or undefined. Only the key is ever named.
 */
function knownKeyGlued(text: string, keys: readonly string[]): string | undefined {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1 || /\s/.test(text[colon + 1]!)) return undefined;
  const key = text.slice(0, colon);
  return keys.includes(key) ? key : undefined;
}

const colonHint = (key: string) => `it looks like ${key}: with no space after the colon, which YAML does not read as a key: write \`${key}: …\``;

/**
 * An unknown key, named only when it is a near miss of a known one (a typo: `pasword`, `clientID`),
 * which cannot be a secret; any other is named by its place, since it may be a secret typed where
 * its key belongs (`password:S3cret` without the space is one key; so is a passphrase whose key
 * was left out).
 */
function unknownKey(where: (key?: string) => string, key: string, { at, line }: { at: number; line?: number }, prefix: string): string {
  const keys = prefix === '' ? ['name', ...Object.keys(SITE_KEYS), 'oauth'] : Object.keys(OAUTH_KEYS);
  const known = keys.join(', ');
  const near = nearMiss(key, keys);
  const place = prefix === '' ? 'the site' : 'its oauth';
  // Not printed even then: a weak password is a near miss too (Passw0rd! of password).
  const glued = knownKeyGlued(key, keys);
  const guess = glued !== undefined ? `; ${colonHint(prefix + glued)}` : near === undefined ? '' : `; did you mean ${prefix}${near}?`;
  return `${where()}: key ${at + 1} of ${place}${line === undefined ? '' : ` (line ${line})`} is not a known key (not printed: it may be a value typed in its place)${guess} (known: ${known})`;
}

/**
 * Where a site's key is written (`oauth` and one of its keys for an oauth key): its place among the
 * site's keys (0-based) and its line; undefined where the parsed file has no such node (an alias).
 */
type KeyPlace = (site: number, key: string, oauthKey?: string) => { at: number; line: number } | undefined;

function keyPlacesOf(yaml: typeof Yaml, document: Yaml.Document, lines: Yaml.LineCounter): KeyPlace {
  const root = document.contents;
  const list = yaml.isMap(root) ? root.get('sites', true) : root;
  const sites = yaml.isSeq(list) ? list.items : [];
  // By the key's text: toJS orders integer-like keys first, so a key's place in the object is not its place in the file.
  const placeOfKey = (map: unknown, key: string) => {
    if (!yaml.isMap(map)) return undefined;
    const at = map.items.findIndex((pair) => yaml.isScalar(pair.key) && String(pair.key.value) === key);
    const node = map.items[at]?.key;
    const start = yaml.isScalar(node) ? node.range?.[0] : undefined;
    return start === undefined ? undefined : { at, line: lines.linePos(start).line };
  };
  return (site, key, oauthKey) => {
    const map = sites[site];
    if (oauthKey === undefined) return placeOfKey(map, key);
    return yaml.isMap(map) ? placeOfKey(map.get(key, true), oauthKey) : undefined;
  };
}

/** A URL's origin (scheme, host, port), or undefined when it is not a URL. */
function originOf(url: string | undefined): string | undefined {
  try {
    return url === undefined ? undefined : new URL(url).origin;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** How an error names a site: by its name when it has a usable one, else by its place in the list. */
function siteLabel(entry: unknown, index: number): string {
  const name = isRecord(entry) ? entry['name'] : undefined;
  return typeof name === 'string' && SITE_NAME.test(name) ? `"${name}"` : `#${index + 1}`;
}

/** A setting as the environment would spell it: numbers and booleans as written, a list of companies comma-joined. */
function settingText(value: unknown, list: boolean): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (list && Array.isArray(value) && value.every((v) => typeof v === 'string')) return value.join(',');
  return undefined;
}

/**
 * Replaces each `${NAME}` by the environment variable NAME; reports the first one not set.
 * `$${NAME}` is the text `${NAME}` (a password may hold one). Adds each NAME read to `used`.
 */
function expandVariables(text: string, env: Env, used?: Set<string>): string | { missing: string } {
  let missing: string | undefined;
  const expanded = text.replace(/\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, escaped: string, name: string) => {
    if (escaped) return whole.slice(1);
    used?.add(name);
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    if (value === undefined) missing ??= name;
    return value ?? '';
  });
  return missing === undefined ? expanded : { missing };
}

/** The token types of yaml's CST (yaml 2: parse/cst.d.ts), which `Unexpected <type> at node end` names. */
const YAML_TOKEN_TYPES = [
  ...['byte-order-mark', 'doc-mode', 'doc-start', 'space', 'comment', 'newline', 'directive-line', 'anchor', 'tag', 'seq-item-ind'],
  ...['explicit-key-ind', 'map-value-ind', 'flow-map-start', 'flow-map-end', 'flow-seq-start', 'flow-seq-end', 'flow-error-end', 'comma'],
  ...['block-scalar-header', 'error', 'directive', 'document', 'doc-end', 'alias', 'scalar', 'single-quoted-scalar', 'double-quoted-scalar'],
  ...['block-scalar', 'block-map', 'block-seq', 'flow-collection'],
];
const FLOW_NAMES = [
  ['flow map', '}'],
  ['flow sequence', ']'],
] as const;

/**
 * The messages of yaml (2.9: compose/*.js) made of fixed words alone, or of words of yaml's own
 * (a token type, a flow collection's name) and nothing of the file: these are shown. The rest
 * quote the file (a tag, an escape sequence, a character, a token's source), which may be a
 * password's: only their code is. Compared whole, so a message yaml words otherwise in a later
 * release is shown by its code only, never by a guess.
 */
const YAML_FIXED_MESSAGES = new Set([
  'Sequence item without - indicator',
  'All sequence items must start at the same column',
  'All mapping items must start at the same column',
  'Implicit map keys need to be followed by map values',
  'Implicit keys need to be on a single line',
  'Implicit keys of flow sequence pairs need to be on a single line',
  'Nested mappings are not allowed in compact mappings',
  'A block sequence may not be used as an implicit map key',
  'Map keys must be unique',
  'Tabs are not allowed as indentation',
  'Comments must be separated from other tokens by white space characters',
  'Tags and anchors must be separated from the next token by white space',
  'Block collections are not allowed within flow collections',
  'Flow end indicator should be more indented than parent',
  'Block scalar values in collections must be indented',
  'Block scalars with more-indented leading empty lines must use an explicit indentation indicator',
  'Block scalar lines must not be less indented than their first line',
  'Block scalar lines must not be less indented than their explicit indentation indicator',
  'Block collection cannot start on same line with directives-end marker',
  'Missing newline after block sequence props',
  'Missing directives-end indicator line',
  'Missing directives-end/doc-start indicator line',
  'Unexpected doc-end without preceding document',
  "Missing closing 'quote",
  'Missing closing "quote',
  'A node can have at most one anchor',
  'A node can have at most one tag',
  'An alias node must not specify any properties',
  'Anchor cannot be an empty string',
  'Alias cannot be an empty string',
  ...FLOW_NAMES.flatMap(([name, end]) => {
    const Name = name[0]!.toUpperCase() + name.slice(1);
    return [
      `Unexpected , in ${name}`,
      `Unexpected empty item in ${name}`,
      `Missing , between ${name} items`,
      `Missing space after : in ${name}`,
      `Missing , or : between ${name} items`,
      `${Name} must end with a ${end}`,
      `${Name} in block collection must be sufficiently indented and end with a ${end}`,
    ];
  }),
  ...YAML_TOKEN_TYPES.map((type) => `Unexpected ${type} at node end`),
]);

/**
 * A YAML parser's problem as its code and place (`TAG_RESOLVE_FAILED at line 4, column 13`), and
 * yaml's words for it only when they are fixed (YAML_FIXED_MESSAGES): its other messages quote the
 * file. The alias errors of toJS have no code; their text names the alias (`password: *S3cret` is
 * an alias to yaml), so they are named by fixed words.
 */
function yamlProblem(err: unknown, text: string): string {
  const { code, linePos } = (err ?? {}) as { code?: unknown; linePos?: { line: number; col: number }[] };
  const message = err instanceof Error ? err.message : '';
  if (typeof code === 'string') {
    // yaml adds ` at line L, column C` to its message, then (after a colon and a blank line) the lines it points at.
    const words = message.split('\n', 1)[0]!.replace(/ at line \d+, column \d+:?$/, '');
    const said = YAML_FIXED_MESSAGES.has(words) ? `: ${words}` : '';
    if (!linePos?.[0]) return `${code}${said}`;
    const { line, col } = linePos[0];
    // yaml names the line after a `key:value` line at times: both are looked at.
    const lines = text.split('\n', line);
    const glued = [lines[line - 1], lines[line - 2]].map((l) => knownKeyGlued(l?.replace(/^\s*(?:-\s+)?/, '') ?? '', ALL_KEYS)).find((k) => k !== undefined);
    return `${code} at line ${line}, column ${col}${said}${glued === undefined ? '' : `; ${colonHint(glued)}`}`;
  }
  if (message.startsWith('Excessive alias count')) return 'too many aliases (a file that expands without bound)';
  if (message.startsWith('Unresolved alias')) return 'an alias (*name) to no anchor: quote a value that starts with *';
  return 'error';
}

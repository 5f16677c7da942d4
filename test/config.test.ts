import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createPool } from '../src/db/database.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { durationSetting, envSchema, parseDuration } from '../src/config-env.js';
import { ConfigError, likelyTypos, loadConfig } from '../src/config.js';
import { TEST_CERT_FILE } from './helpers/tls-front.js';

const base = { CPQ_BASE_URL: 'https://site.example.com' };
const TEST_CERT = readFileSync(TEST_CERT_FILE, 'utf8');

/** Folders the tests wrote files in, removed when the file's tests end: left, each run added four to the temporary folder. */
const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('configuration', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig(base);
    expect(config.cpq).toMatchObject({
      baseUrl: 'https://site.example.com',
      pathPrefix: '',
      companies: ['_host'],
      integrationUsers: 'auto',
      auth: { kind: 'none' },
      pageSize: 1000,
      concurrency: 4,
    });
    expect(config.lookbackMs).toBe(600_000);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.dataDir).toBe('./.data');
  });

  it('parses durations', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('soon')).toBeUndefined();
  });

  it('shows a duration as an operator writes it, in the largest unit that keeps it whole, and reads back the same', () => {
    const shown = ['36h', '90s', '2m', '250ms', '7d', '1500ms', '0s'].map((text) => durationSetting(parseDuration(text)!));
    expect(shown).toEqual(['36h', '90s', '2m', '250ms', '7d', '1500ms', '0s']);
    expect(durationSetting(parseDuration('120s')!)).toBe('2m');
    expect(durationSetting(parseDuration('48h')!)).toBe('2d');
  });

  it('names every wrong value in one message', () => {
    expect(() => loadConfig({ ...base, CPQ_PAGE_SIZE: '5000', SYNC_LOOKBACK: 'soon', CPQ_PATH_PREFIX: '/x' })).toThrow(
      /CPQ_PATH_PREFIX: must be empty .*CPQ_PAGE_SIZE: "5000" is not a whole number from 1 to 1000.*SYNC_LOOKBACK: "soon" is not a duration/,
    );
    expect(() => loadConfig({ CPQ_BASE_URL: 'ftp://x' })).toThrow(/CPQ_BASE_URL: must be an http\(s\) URL/);
  });

  it('refuses a key=value DATABASE_URL (libpq form) in one line without its password, asking for a URL (review EC: it failed as a host that does not resolve)', () => {
    const refused = () => loadConfig({ ...base, DATABASE_URL: 'host=db.example.com port=5432 dbname=warehouse user=sync password=Kv-Secret-1' });
    expect(refused).toThrow(
      'invalid configuration: DATABASE_URL: is a key=value connection string (host=… dbname=…), which is not read: write it as a URL, postgres://user:password@host:5432/database',
    );
    expect(refused).not.toThrow(/Kv-Secret-1/);
    expect(loadConfig({ ...base, DATABASE_URL: 'postgres://sync:pw@db.example.com:5432/warehouse' }).databaseUrl).toBe(
      'postgres://sync:pw@db.example.com:5432/warehouse',
    );
  });

  it('names an unreadable *_FILE with every other mistake at once, not after they are fixed (review DY)', () => {
    const missing = join(tempDir('cpq-config-'), 'missing');
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env);
      } catch (err) {
        return (err as ConfigError).problems;
      }
      throw new Error('loadConfig accepted a wrong configuration');
    };
    const cannotRead = (name: string) => `${name}: cannot read the file it names (not printed: it may be the secret itself) (ENOENT)`;
    // A value the schema refuses, beside each file: every one is named.
    expect(
      problems({
        ...base,
        CPQ_PAGE_SIZE: 'abc',
        CPQ_USERNAME: 'u',
        CPQ_PASSWORD_FILE: missing,
        CPQ_CA_FILE: `${missing}.pem`,
        ALERT_WEBHOOK_URL: 'https://hooks.example.com/x',
        ALERT_WEBHOOK_SECRET_FILE: missing,
      }),
    ).toEqual([
      'CPQ_PAGE_SIZE: "abc" is not a whole number from 1 to 1000',
      cannotRead('CPQ_PASSWORD_FILE'),
      `CPQ_CA_FILE: cannot read ${missing}.pem (ENOENT)`,
      cannotRead('ALERT_WEBHOOK_SECRET_FILE'),
    ]);
    // Mistakes past the schema, each found by its own check, named together too.
    expect(
      problems({
        CPQ_BASE_URL: 'http://cpq.example.com',
        CPQ_PASSWORD: 'p',
        CPQ_CA_FILE: missing,
        HTTP_HOST: '127.0.0.1',
        ALERT_RULES: 'nonsense',
        ALERT_WEBHOOK_SECRET: 's',
      }),
    ).toEqual([
      'CPQ_USERNAME is required with CPQ_PASSWORD',
      'CPQ_BASE_URL uses plain http to cpq.example.com: use https, or set CPQ_ALLOW_INSECURE_HTTP=true if you really mean it',
      `CPQ_CA_FILE: cannot read ${missing} (ENOENT)`,
      'HTTP_HOST is set but HTTP_PORT is not: set the port too, or neither (no health server)',
      'ALERT_WEBHOOK_SECRET is set but ALERT_WEBHOOK_URL is not: set the URL too, or neither (no alerts)',
      expect.stringMatching(/^ALERT_RULES: unknown rule nonsense /),
    ]);
    // A refused value stands at its default while the rest are checked, and what the default alone
    // would be blamed for is not named: the refused value is the mistake.
    expect(problems({ CPQ_BASE_URL: 'http://cpq.example.com', CPQ_ALLOW_INSECURE_HTTP: 'maybe', HTTP_HOST: '::1', HTTP_PORT: 'x' })).toEqual([
      expect.stringMatching(/^CPQ_ALLOW_INSECURE_HTTP: /),
      expect.stringMatching(/^HTTP_PORT: /),
    ]);
    // An unreadable password file still says that basic auth is meant: the missing user name is named with it.
    expect(problems({ ...base, CPQ_PASSWORD_FILE: missing })).toEqual([cannotRead('CPQ_PASSWORD_FILE'), 'CPQ_USERNAME is required with CPQ_PASSWORD']);
    // One mistake alone is said as several are: one line that starts "invalid configuration:".
    expect(() => loadConfig({ ...base, CPQ_USERNAME: 'u', CPQ_PASSWORD_FILE: missing })).toThrow(ConfigError.listing([cannotRead('CPQ_PASSWORD_FILE')]));
  });

  it('bounds every duration: a wait at most what a Node timer keeps (longer ones fire after 1 ms), timeouts at least 1 ms, spans at most a century', () => {
    const refused = (env: Record<string, string>, message: RegExp) => expect(() => loadConfig({ ...base, ...env })).toThrow(message);
    for (const name of [
      'SHUTDOWN_TIMEOUT',
      'CPQ_REQUEST_TIMEOUT',
      'ALERT_WEBHOOK_TIMEOUT',
      'CPQ_ZIP_DOWNLOAD_TIMEOUT',
      'SYNC_LOCK_TIMEOUT',
      'ALERT_RETRY_EVERY',
      'CPQ_RETRY_MAX_DELAY',
    ]) {
      refused({ [name]: '25d' }, new RegExp(`${name}: "25d" is not a duration from .* to 2147483647ms`));
      expect(() => loadConfig({ ...base, [name]: '24d' }), name).not.toThrow();
    }
    // 0 (or less than half a millisecond, which rounds to 0) would time out at once, or, as a Postgres lock_timeout, never.
    for (const value of ['0', '0.4ms']) refused({ SYNC_LOCK_TIMEOUT: value }, /SYNC_LOCK_TIMEOUT: ".*" is not a duration from 1ms to/);
    refused({ CPQ_REQUEST_TIMEOUT: '0' }, /CPQ_REQUEST_TIMEOUT/);
    refused({ ALERT_RETRY_EVERY: '0' }, /ALERT_RETRY_EVERY: "0" is not a duration from 100ms to/);
    refused({ SYNC_LOOKBACK: '100100000d' }, /SYNC_LOOKBACK: "100100000d" is not a duration from 0s to 36500d/);
    refused({ HISTORY_RETENTION: '100100000d' }, /HISTORY_RETENTION: "100100000d" is not a duration with a unit/);
    expect(loadConfig({ ...base, SYNC_LOOKBACK: '0', SYNC_FULL_EVERY: '3650d', CPQ_RETRY_BASE_DELAY: '0' }).lookbackMs).toBe(0);
  });

  it('refuses a HISTORY_RETENTION without its unit (400 would be seconds), ALERT_RULES naming no rule or none beside rules, a company named twice, an unreadable URL', () => {
    expect(() => loadConfig({ ...base, HISTORY_RETENTION: '400' })).toThrow(/HISTORY_RETENTION: "400" is not a duration with a unit such as 400d/);
    expect(loadConfig({ ...base, HISTORY_RETENTION: '400d' }).historyRetentionMs).toBe(400 * 86_400_000);
    // Empty is unset (every rule), as a blank Compose or Helm value gives; commas alone name no rule.
    for (const rules of ['', ' '])
      expect(loadConfig({ ...base, ALERT_RULES: rules }).alerts.rules.rules, JSON.stringify(rules)).toEqual(loadConfig(base).alerts.rules.rules);
    expect(() => loadConfig({ ...base, ALERT_RULES: ' , ' })).toThrow(/ALERT_RULES names no rule/);
    expect(loadConfig({ ...base, ALERT_RULES: 'none,none' }).alerts.rules.rules).toEqual([]);
    expect(() => loadConfig({ ...base, ALERT_RULES: 'none,admin_flag' })).toThrow(/ALERT_RULES: none cannot be combined/);
    expect(loadConfig({ ...base, ALERT_RULES: 'none' }).alerts.rules.rules).toEqual([]);
    expect(() => loadConfig({ ...base, CPQ_COMPANIES: '_host, partnerA,_host' })).toThrow(/CPQ_COMPANIES: names "_host" twice/);
    // A DATABASE_URL Node cannot read is bad configuration, named, its text (a password) not shown.
    expect(() => loadConfig({ ...base, DATABASE_URL: 'postgres://sync:S3cretPw@db:99999/x' })).toThrow(
      /^invalid configuration: DATABASE_URL: is not a URL Node can read[^]*$/,
    );
    expect(() => loadConfig({ ...base, DATABASE_URL: 'postgres://sync:S3cretPw@db:99999/x' })).not.toThrow(/S3cretPw/);
    for (const url of ['https://site.example.com:99999', 'https://exa mple.com']) {
      expect(() => loadConfig({ CPQ_BASE_URL: url }), url).toThrow(
        ConfigError.listing(['CPQ_BASE_URL is not a URL Node can read (a port above 65535, a space in the host?)']),
      );
    }
    expect(loadConfig({ ...base, DATA_DIR: '  ' }).dataDir).toBe('./.data');
  });

  it("names the variables it does not read that look like its own: a typo (with what it may be), or one of its prefixes; never another program's", () => {
    const config = loadConfig({
      ...base,
      HISTORY_RETENTON: '400d',
      CPQ_CONCURENCY: '16',
      CPQ_RETRIES: '3',
      HTTP_PROXY: 'http://proxy:3128',
      TEST_DATABASE_URL: 'postgres://x',
      DOTENV_CONFIG_PATH: '/x',
      npm_config_cache: '/x',
      // What Kubernetes sets for a service named cpq-sync.
      CPQ_SYNC_SERVICE_HOST: '10.0.0.7',
      CPQ_SYNC_SERVICE_PORT: '8080',
      CPQ_SYNC_SERVICE_PORT_HTTP: '8080',
      CPQ_SYNC_PORT: 'tcp://10.0.0.7:8080',
      CPQ_SYNC_PORT_8080_TCP: 'tcp://10.0.0.7:8080',
      CPQ_SYNC_PORT_8080_TCP_PROTO: 'tcp',
      CPQ_SYNC_PORT_8080_TCP_PORT: '8080',
      CPQ_SYNC_PORT_8080_TCP_ADDR: '10.0.0.7',
      // Another program's, one letter off ours (a service named https, an image's setting).
      HTTPS_PORT: '8443',
    });
    expect(config.unknownVariables).toEqual([
      'CPQ_CONCURENCY is not a variable cpq-sync reads: did you mean CPQ_CONCURRENCY?',
      'CPQ_RETRIES is not a variable cpq-sync reads (see the Configuration section of the README)',
      'HISTORY_RETENTON is not a variable cpq-sync reads: did you mean HISTORY_RETENTION?',
    ]);
    expect(loadConfig(base).unknownVariables).toEqual([]);
    // In any case, and the nearest name when two are near.
    expect(loadConfig({ ...base, history_retention: '400d', HTTP_OST: '127.0.0.1', HTPP_PORT: '8080' }).unknownVariables).toEqual([
      'HTPP_PORT is not a variable cpq-sync reads: did you mean HTTP_PORT?',
      'HTTP_OST is not a variable cpq-sync reads: did you mean HTTP_HOST?',
      'history_retention is not a variable cpq-sync reads: did you mean HISTORY_RETENTION?',
    ]);
    // A singular for a plural is one mistake, not three characters off (review CM).
    expect(loadConfig({ ...base, CPQ_COMPANY: '*' }).unknownVariables).toEqual(['CPQ_COMPANY is not a variable cpq-sync reads: did you mean CPQ_COMPANIES?']);
    // A typo that makes the configuration wrong: the error cannot be read with it, so it is named with the error.
    expect(likelyTypos({ ...base, CPQ_USERNAME: 'u', CPQ_PASWORD: 'x', CPQ_RETRIES: '3' })).toEqual([
      'CPQ_PASWORD is not a variable cpq-sync reads: did you mean CPQ_PASSWORD?',
    ]);
  });

  it('a variable a sites file names (${NAME}) is one it reads', () => {
    const dir = tempDir('cpq-sites-vars-');
    const file = join(dir, 'sites.yaml');
    writeFileSync(file, '- {name: emea, baseUrl: https://emea.example.com, username: u, password: "${CPQ_EMEA_PASSWORD}"}\n');
    expect(loadConfig({ CPQ_SITES_FILE: file, CPQ_EMEA_PASSWORD: 'pw', CPQ_OTHER_THING: 'x' }).unknownVariables).toEqual([
      'CPQ_OTHER_THING is not a variable cpq-sync reads (see the Configuration section of the README)',
    ]);
  });

  it('.env.example lists every variable it reads, and no other', () => {
    const example = readFileSync(fileURLToPath(new URL('../.env.example', import.meta.url)), 'utf8');
    const listed = [...example.matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!);
    expect([...new Set(listed)].sort()).toEqual(Object.keys(envSchema.shape).sort());
  });

  it("README's tables name every variable it reads (the Configuration table, the alerts' own), and no other", () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    // The first cell of a table row: `CPQ_USERNAME`, `CPQ_PASSWORD` / `CPQ_PASSWORD_FILE` names three.
    const firstCells = readme.split('\n').flatMap((line) => (line.startsWith('| ') ? [line.split('|')[1]!] : []));
    const documented = firstCells.flatMap((cell) => [...cell.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
    expect([...new Set(documented)].sort()).toEqual(Object.keys(envSchema.shape).sort());
  });

  it('reads HTTP_HOST with HTTP_PORT, and refuses it alone', () => {
    expect(loadConfig({ ...base, HTTP_PORT: '8080', HTTP_HOST: ' 127.0.0.1 ' }).worker).toMatchObject({ httpPort: 8080, httpHost: '127.0.0.1' });
    expect(loadConfig({ ...base, HTTP_PORT: '8080' }).worker.httpHost).toBeUndefined();
    expect(() => loadConfig({ ...base, HTTP_HOST: '127.0.0.1' })).toThrow(
      ConfigError.listing(['HTTP_HOST is set but HTTP_PORT is not: set the port too, or neither (no health server)']),
    );
  });

  it('a misspelt DATABASE_URL without DATABASE_URL is refused: the embedded Postgres would take every user unseen (review CM)', () => {
    for (const name of ['DATABSE_URL', 'database_url', 'DATABASE_URI']) {
      expect(() => loadConfig({ ...base, [name]: 'postgres://db.example/cpq' })).toThrow(
        ConfigError.listing([
          `${name} is set but DATABASE_URL is not: did you mean DATABASE_URL? Without it cpq-sync uses an embedded Postgres in DATA_DIR (./.data), not your database; rename the variable, or unset ${name} to use the embedded one`,
        ]),
      );
    }
    // Beside DATABASE_URL, the typo is only a warning (the setting is not at its default).
    const both = loadConfig({ ...base, DATABASE_URL: 'postgres://db.example/cpq', DATABSE_URL: 'x' });
    expect(both.databaseUrl).toBe('postgres://db.example/cpq');
    expect(both.unknownVariables).toEqual(['DATABSE_URL is not a variable cpq-sync reads: did you mean DATABASE_URL?']);
    expect(loadConfig(base).databaseUrl).toBeUndefined();
  });

  it('a base URL ending in /cpq without CPQ_PATH_PREFIX is read as the root and prefix /cpq: integration users are read (review CM: none were)', () => {
    for (const url of ['https://cpq.example.com/cpq', 'https://cpq.example.com/cpq/', 'https://cpq.example.com/cpq//']) {
      expect(loadConfig({ CPQ_BASE_URL: url }).cpq).toMatchObject({ baseUrl: 'https://cpq.example.com', pathPrefix: '/cpq' });
    }
    expect(loadConfig({ CPQ_BASE_URL: 'https://proxy.example.com/fusion/cpq' }).cpq).toMatchObject({
      baseUrl: 'https://proxy.example.com/fusion',
      pathPrefix: '/cpq',
    });
    // Otherwise as written: a prefix given, or another path.
    expect(loadConfig({ CPQ_BASE_URL: 'https://cpq.example.com/cpq', CPQ_PATH_PREFIX: '/cpq' }).cpq).toMatchObject({
      baseUrl: 'https://cpq.example.com/cpq',
      pathPrefix: '/cpq',
    });
    expect(loadConfig({ CPQ_BASE_URL: 'https://proxy.example.com/cpqa' }).cpq).toMatchObject({ baseUrl: 'https://proxy.example.com/cpqa', pathPrefix: '' });
  });

  it('reads companies and auth', () => {
    expect(loadConfig({ ...base, CPQ_COMPANIES: ' _host, partnerA ,' }).cpq!.companies).toEqual(['_host', 'partnerA']);
    expect(loadConfig({ ...base, CPQ_USERNAME: 'u', CPQ_PASSWORD: 'p' }).cpq!.auth).toEqual({ kind: 'basic', username: 'u', password: 'p' });
    expect(loadConfig({ ...base, CPQ_TOKEN: 't' }).cpq!.auth).toEqual({ kind: 'bearer', token: 't' });
    expect(() => loadConfig({ ...base, CPQ_USERNAME: 'u' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, CPQ_TOKEN: 't', CPQ_USERNAME: 'u', CPQ_PASSWORD: 'p' })).toThrow(/more than one CPQ auth method/);
    expect(() => loadConfig({ ...base, CPQ_OAUTH_CLIENT_ID: 'c' })).toThrow(/CPQ_OAUTH_TOKEN_URL, CPQ_OAUTH_CLIENT_SECRET/);
  });

  it('reads secrets from files without echoing them in errors', () => {
    const dir = tempDir('cpq-config-');
    writeFileSync(join(dir, 'password'), 'from-a-file\n');
    const config = loadConfig({ ...base, CPQ_USERNAME: 'u', CPQ_PASSWORD_FILE: join(dir, 'password') });
    expect(config.cpq!.auth).toEqual({ kind: 'basic', username: 'u', password: 'from-a-file' });
    expect(() => loadConfig({ ...base, CPQ_USERNAME: 'u', CPQ_PASSWORD_FILE: join(dir, 'missing') })).toThrow(
      'CPQ_PASSWORD_FILE: cannot read the file it names (not printed: it may be the secret itself) (ENOENT)',
    );
    const both = () => loadConfig({ ...base, CPQ_USERNAME: 'u', CPQ_PASSWORD: 'hunter2', CPQ_PASSWORD_FILE: join(dir, 'password') });
    expect(both).toThrow(/CPQ_PASSWORD and CPQ_PASSWORD_FILE are both set/);
    expect(both).not.toThrow(/hunter2/);
  });

  it('a *_FILE naming an empty file is said to be empty, not the secret to be missing (review HT)', () => {
    const dir = tempDir('cpq-config-');
    for (const text of ['', '\n']) writeFileSync(join(dir, `empty${text.length}`), text, { mode: 0o600 });
    for (const empty of [join(dir, 'empty0'), join(dir, 'empty1')]) {
      expect(() => loadConfig({ ...base, CPQ_USERNAME: 'u', CPQ_PASSWORD_FILE: empty })).toThrow(
        ConfigError.listing(['CPQ_PASSWORD_FILE: the file it names is empty: put the password in it']),
      );
      expect(() =>
        loadConfig({ ...base, CPQ_OAUTH_TOKEN_URL: 'https://idcs.example.com/oauth2/v1/token', CPQ_OAUTH_CLIENT_ID: 'c', CPQ_OAUTH_CLIENT_SECRET_FILE: empty }),
      ).toThrow(ConfigError.listing(['CPQ_OAUTH_CLIENT_SECRET_FILE: the file it names is empty: put the client secret in it']));
    }
    // Neither given: the variable is required, as before.
    expect(() => loadConfig({ ...base, CPQ_USERNAME: 'u', CPQ_PASSWORD: '' })).toThrow(/CPQ_PASSWORD \(or CPQ_PASSWORD_FILE\) is required with CPQ_USERNAME/);
  });
});

describe('transport security settings', () => {
  it('refuses plain http to another machine unless CPQ_ALLOW_INSECURE_HTTP=true', () => {
    expect(() => loadConfig({ CPQ_BASE_URL: 'http://cpq.example.com' })).toThrow(
      /CPQ_BASE_URL uses plain http to cpq\.example\.com: use https, or set CPQ_ALLOW_INSECURE_HTTP=true/,
    );
    expect(loadConfig({ CPQ_BASE_URL: 'http://cpq.example.com', CPQ_ALLOW_INSECURE_HTTP: 'true' }).cpq!.baseUrl).toBe('http://cpq.example.com');
    for (const local of ['http://127.0.0.1:8080', 'http://localhost:1', 'http://[::1]:9']) expect(loadConfig({ CPQ_BASE_URL: local }).cpq).toBeDefined();
    expect(() =>
      loadConfig({ ...base, CPQ_OAUTH_TOKEN_URL: 'http://idcs.example.com/oauth2/v1/token', CPQ_OAUTH_CLIENT_ID: 'c', CPQ_OAUTH_CLIENT_SECRET: 's' }),
    ).toThrow(/CPQ_OAUTH_TOKEN_URL uses plain http/);
  });

  it('refuses credentials in the URL and reads CPQ_CA_FILE', () => {
    expect(() => loadConfig({ CPQ_BASE_URL: 'https://user:pw@cpq.example.com' })).toThrow(
      /CPQ_BASE_URL must not contain a user name or password: use the CPQ_\* auth settings/,
    );
    const dir = tempDir('cpq-ca-');
    writeFileSync(join(dir, 'ca.pem'), TEST_CERT);
    expect(loadConfig({ ...base, CPQ_CA_FILE: join(dir, 'ca.pem') }).cpq!.ca).toContain('BEGIN CERTIFICATE');
    expect(() => loadConfig({ ...base, CPQ_CA_FILE: join(dir, 'nope.pem') })).toThrow(/CPQ_CA_FILE: cannot read .*nope\.pem \(ENOENT\)/);
  });

  it("refuses a CPQ_CA_FILE (or a site's caFile) that holds no readable certificate in PEM: Node took any text and added no CA (review HK)", () => {
    const dir = tempDir('cpq-ca-');
    const file = (name: string, text: string | Buffer) => {
      writeFileSync(join(dir, name), text, { mode: 0o600 });
      return join(dir, name);
    };
    const none =
      "holds no certificate in PEM form (-----BEGIN CERTIFICATE-----): put the certificate of the CA that issued the site's there (from DER: openssl x509 -inform der -in FILE -out ca.pem)";
    const der = Buffer.from(TEST_CERT.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    for (const [name, text] of [
      ['empty.pem', ''],
      ['key.pem', '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n'],
      ['ca.der', der],
      ['begin-only.pem', '-----BEGIN CERTIFICATE-----\n' + TEST_CERT.split('\n').slice(1, 3).join('\n')],
    ] as const)
      expect(() => loadConfig({ ...base, CPQ_CA_FILE: file(name, text) }), name).toThrow(`CPQ_CA_FILE: ${join(dir, name)} ${none}`);
    expect(() => loadConfig({ ...base, CPQ_CA_FILE: file('fake.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n') })).toThrow(
      /^invalid configuration: CPQ_CA_FILE: .*fake\.pem holds a certificate that cannot be read \(certificate 1 of 1: [^)]+\): put the certificate of the CA that issued the site's there, in PEM$/,
    );
    expect(() =>
      loadConfig({ ...base, CPQ_CA_FILE: file('second-bad.pem', TEST_CERT + '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n') }),
    ).toThrow(/holds a certificate that cannot be read \(certificate 2 of 2: /);
    const sites = file(
      'sites.yaml',
      `- {name: a, baseUrl: https://a.example.com, username: u, passwordFile: ${file('pw', 'secret')}, caFile: ${join(dir, 'key.pem')}}\n`,
    );
    expect(() => loadConfig({ CPQ_SITES_FILE: sites })).toThrow(`caFile: ${join(dir, 'key.pem')} ${none}`);
    // OpenSSL's TRUSTED CERTIFICATE form, which Node's TLS reads (review HY): read.
    const trusted = readFileSync(fileURLToPath(new URL('./fixtures/tls/test-only-trusted-cert.pem', import.meta.url)), 'utf8');
    expect(trusted).toContain('-----BEGIN TRUSTED CERTIFICATE-----');
    expect(loadConfig({ ...base, CPQ_CA_FILE: file('trusted.pem', trusted) }).cpq!.ca).toBe(trusted);
    // Two CAs, with a comment before and CRLF line ends: read.
    expect(loadConfig({ ...base, CPQ_CA_FILE: file('two.pem', `# our CAs\r\n${TEST_CERT.replace(/\n/g, '\r\n')}${TEST_CERT}`) }).cpq!.ca).toContain(
      'BEGIN CERTIFICATE',
    );
  });

  it("refuses a CPQ_CA_FILE (or a site's caFile) another local user could have written: whoever adds a CA to it chooses where the credentials go (review HA)", () => {
    const dir = tempDir('cpq-ca-');
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, TEST_CERT);
    chmodSync(ca, 0o646);
    const refusal = `${ca} can be written by every user (mode 646): refusing to read it, since whoever wrote it chooses which server is trusted as CPQ, and so where the credentials go; make it yours and not writable by others (chown, chmod go-w)`;
    expect(() => loadConfig({ ...base, CPQ_CA_FILE: ca })).toThrow(`CPQ_CA_FILE: ${refusal}`);
    const sites = join(dir, 'sites.yaml');
    writeFileSync(sites, `- {name: a, baseUrl: https://a.example.com, username: u, passwordFile: ${ca}, caFile: ${ca}}\n`, { mode: 0o600 });
    expect(() => loadConfig({ CPQ_SITES_FILE: sites })).toThrow(`caFile: ${refusal}`);
    chmodSync(ca, 0o644);
    expect(loadConfig({ ...base, CPQ_CA_FILE: ca }).cpq!.ca).toContain('BEGIN CERTIFICATE');
  });

  it('refuses a DATABASE_URL whose sslrootcert, sslcert or sslkey another local user could have written (review HA), and names no password', () => {
    const dir = tempDir('cpq-db-ca-');
    const file = join(dir, 'root.crt');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    chmodSync(file, 0o666);
    const url = (param: string) => `postgres://sync:db-Secret-9@db.example.com/cpq?sslmode=verify-full&${param}=${encodeURIComponent(file)}`;
    for (const [param, chooses] of [
      ['sslrootcert', 'which server is trusted as the database, and so where its password goes'],
      ['sslcert', 'which client certificate the connections present'],
      ['sslkey', 'which client key the connections present'],
    ] as const) {
      let message = '';
      try {
        loadConfig({ DATABASE_URL: url(param) });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toContain(
        `DATABASE_URL: its ${param} ${file} can be written by every user (mode 666): refusing to connect, since whoever wrote it chooses ${chooses}; make it yours and not writable by others (chown, chmod go-w)`,
      );
      expect(message).not.toContain('db-Secret-9');
    }
    chmodSync(file, 0o644);
    expect(loadConfig({ DATABASE_URL: url('sslrootcert') }).databaseUrl).toBe(url('sslrootcert'));
    // Where node-postgres reads another file than this URL's own reading names (it encodes a URL
    // holding a space or a bare %: "a b%4a.crt", not "a bJ.crt"), the file it reads is checked (review HC).
    writeFileSync(join(dir, 'a bJ.crt'), 'x');
    chmodSync(join(dir, 'a bJ.crt'), 0o644);
    writeFileSync(join(dir, 'a b%4a.crt'), 'x');
    chmodSync(join(dir, 'a b%4a.crt'), 0o666);
    expect(() => loadConfig({ DATABASE_URL: `postgres://sync:pw@db.example.com/cpq?sslrootcert=${dir}/a b%4a.crt` })).toThrow(
      `its sslrootcert ${dir}/a b%4a.crt can be written by every user (mode 666)`,
    );
    // One that cannot be read is the connection's to name, as before.
    expect(loadConfig({ DATABASE_URL: url('sslrootcert').replace('root.crt', 'missing.crt') }).databaseUrl).toContain('missing.crt');
  });

  it('refuses a connection whose sslrootcert became writable by others after the start: node-postgres reads it at every connection (review HB)', async () => {
    const dir = tempDir('cpq-db-ca-');
    const file = join(dir, 'root.crt');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    chmodSync(file, 0o644);
    const url = `postgres://sync:db-Secret-9@127.0.0.1:9/cpq?sslmode=verify-full&sslrootcert=${encodeURIComponent(file)}`;
    const pool = createPool(loadConfig({ DATABASE_URL: url }).databaseUrl!, 1, undefined, 2000);
    try {
      chmodSync(file, 0o666);
      // A refusal of the configuration (exit code 2), not a database error.
      await expect(pool.connect()).rejects.toMatchObject({ kind: 'config' });
      await expect(pool.connect()).rejects.toThrow(
        `DATABASE_URL: its sslrootcert ${file} can be written by every user (mode 666): refusing to connect, since whoever wrote it chooses which server is trusted as the database, and so where its password goes`,
      );
    } finally {
      await pool.end();
    }
  });

  it('refuses NODE_EXTRA_CA_CERTS another local user could have written: Node trusts its CAs for CPQ and the database (review HB)', () => {
    const dir = tempDir('cpq-extra-ca-');
    const file = join(dir, 'extra.pem');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    chmodSync(file, 0o646);
    expect(() => loadConfig({ ...base, NODE_EXTRA_CA_CERTS: file })).toThrow(
      `NODE_EXTRA_CA_CERTS: ${file} can be written by every user (mode 646): refusing to start, since whoever wrote it chooses which servers are trusted as CPQ and as the database; make it yours and not writable by others (chown, chmod go-w)`,
    );
    chmodSync(file, 0o644);
    expect(loadConfig({ ...base, NODE_EXTRA_CA_CERTS: file }).cpq).toBeDefined();
  });
});

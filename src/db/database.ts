import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { TLSSocket } from 'node:tls';
import { parseConnectionUrl, urlText } from '../connection-url.js';
import { SyncError } from '../errors.js';
import { foreignDatabaseCertificate } from '../foreign-writer.js';
import type { Database } from './schema.js';
import { readPasswordFileWhenNone, withPasswordFileNoted } from './password-file.js';

export type Db = Kysely<Database>;

/**
 * Query parameters of a connection string that hold or may hold a secret: libpq and
 * node-postgres take `password` and `sslpassword` there too (`?password=...`), and any other
 * parameter named like a credential is hidden as well rather than guessed safe.
 */
const SECRET_PARAM = /pass|pwd|secret|token|key|auth|cred/i;

/**
 * Hides the password of a connection string, in its user part and its query string, for logs and
 * errors. A query value holding an `@` is hidden too, whatever its parameter's name: it may be the
 * rest of a password with an unescaped `?` (`postgres://sync:2024/x?Spring=Summer9@db` reads as the
 * host `sync` and a parameter `Spring`), which no name tells apart from a login such as
 * `user=admin@server` (review IM).
 */
export function redactUrl(url: string): string {
  const parsed = parseConnectionUrl(url);
  if (parsed === undefined) return '(unparseable connection string)';
  if (parsed.password) parsed.password = '***';
  for (const name of [...new Set(parsed.searchParams.keys())]) {
    if (SECRET_PARAM.test(name) || parsed.searchParams.getAll(name).some((value) => value.includes('@'))) parsed.searchParams.set(name, '***');
  }
  return urlText(parsed);
}

/**
 * How long a statement of this tool waits for a lock before it fails (lock_timeout), unless told
 * otherwise (SYNC_LOCK_TIMEOUT). A run's own waits are short (another site's run at its commit)
 * except behind a migration, whose DDL waits for the runs in progress and queues every later
 * request behind it: so the bound is longer than a run (30 minutes). And any role may queue a
 * lock request it will then be refused (cpq_reader's CREATE RULE on a
 * table it reads takes ACCESS EXCLUSIVE before the ownership check), and every later request
 * queues behind it: without a bound, a reporting login could hold every run in its transaction,
 * its site's sync lock with it, for as long as it liked. Migrations set their own (Kysely's).
 */
const DEFAULT_LOCK_TIMEOUT_MS = 30 * 60_000;

/**
 * The connection string without its own `options` parameter, and the options to connect with:
 * its own first, then `ours`. node-postgres lets a URL's `options` replace the pool's outright,
 * which dropped search_path and lock_timeout; after it, a later `-c` wins.
 */
export function withOptions(connectionString: string, ours: string): { connectionString: string; options: string } {
  // Taken apart as text, every other part left byte for byte as given: re-encoded, node-postgres
  // would decode it once less than it was encoded (a socket host /tmp became %2Ftmp), and a whole
  // URL would not parse for every form it takes (postgres://user:pw@/db?host=/run/postgresql).
  const hash = connectionString.indexOf('#');
  const main = hash < 0 ? connectionString : connectionString.slice(0, hash);
  const at = main.indexOf('?');
  if (at < 0) return { connectionString, options: ours };
  // Each part decoded as node-postgres decodes a query (URLSearchParams: opt%69ons is options too,
  // + is a space); the options taken out, the rest kept as given.
  const theirOptions: string[] = [];
  const rest: string[] = [];
  for (const part of main.slice(at + 1).split('&')) {
    const [key, value] = [...new URLSearchParams(part)][0] ?? [];
    if (key === 'options') theirOptions.push(value ?? '');
    else rest.push(part);
  }
  if (theirOptions.length === 0) return { connectionString, options: ours };
  const theirs = theirOptions.join(' ').trim();
  const kept = rest.join('&');
  return {
    connectionString: main.slice(0, at) + (kept === '' ? '' : `?${kept}`) + (hash < 0 ? '' : connectionString.slice(hash)),
    options: theirs === '' ? ours : `${theirs} ${ours}`,
  };
}

/** The sslmode values node-postgres 8 takes as verify-full (pg-connection-string, unless uselibpqcompat=true). */
const VERIFY_FULL_ALIASES = new Set(['prefer', 'require', 'verify-ca']);

/**
 * The connection string with sslmode=prefer, require or verify-ca written as verify-full, which
 * node-postgres 8 makes of each anyway (it verifies the certificate and its host name, unlike
 * libpq): named so, it connects the same, without the nine-line "SECURITY WARNING" it writes on
 * stderr for the others, which left a command more than its one line there. Under
 * uselibpqcompat=true those modes mean libpq's, weaker ones: left as they are. Taken apart as
 * text, every other part as given (see withOptions).
 */
export function withSslModeAsVerified(connectionString: string): string {
  const hash = connectionString.indexOf('#');
  const main = hash < 0 ? connectionString : connectionString.slice(0, hash);
  const at = main.indexOf('?');
  if (at < 0) return connectionString;
  const parts = main.slice(at + 1).split('&');
  // Each part decoded as node-postgres decodes a query (URLSearchParams), as in withOptions.
  const decoded = parts.map((part) => [...new URLSearchParams(part)][0]);
  if (decoded.some((pair) => pair?.[0] === 'uselibpqcompat' && pair[1] === 'true')) return connectionString;
  const kept = parts.map((part, i) => {
    const pair = decoded[i];
    return pair?.[0] === 'sslmode' && VERIFY_FULL_ALIASES.has(pair[1]) ? 'sslmode=verify-full' : part;
  });
  return main.slice(0, at) + `?${kept.join('&')}` + (hash < 0 ? '' : connectionString.slice(hash));
}

/**
 * A client of the database: its password read from PGPASSFILE's file when DATABASE_URL has none
 * (readPasswordFileWhenNone), and never sent in clear text but over TLS that verified the server. Every connection of ours
 * to a DATABASE_URL is one (a pool's, the health connection).
 */
export class DatabaseClient extends pg.Client {
  /** Why this client may not connect: a certificate file its URL names another user could have written. */
  private readonly refusedCertificate: string | undefined;

  constructor(config?: pg.ClientConfig) {
    // Asked before node-postgres reads the certificate files the URL names, as it does for each
    // client; said when it connects (a constructor's throw would escape the pool's queue).
    const refused = config?.connectionString === undefined ? undefined : foreignDatabaseCertificate(config.connectionString);
    super(config?.connectionString === undefined ? config : { ...config, connectionString: withSslModeAsVerified(config.connectionString) });
    this.refusedCertificate = refused;
    readPasswordFileWhenNone(this);
  }

  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
  override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
    if (this.refusedCertificate !== undefined) {
      // A refusal of the configuration (exit code 2), whenever it is found, not a database error.
      const err = new SyncError('config', `DATABASE_URL: ${this.refusedCertificate}`);
      if (callback === undefined) return Promise.reject(err);
      process.nextTick(() => (callback as (err: Error) => void)(err));
      return;
    }
    if (callback === undefined) return super.connect();
    super.connect(callback);
  }

  /**
   * A server asking for the password in clear text over a connection without TLS that verified
   * it is refused before the password is sent (review GS): on loopback, any local user may listen on
   * DATABASE_URL's port while the server is down (restarted, upgraded) and ask for it so.
   * SCRAM (scram-sha-256, Postgres' default since 14) and md5 send no password (md5 gives such a
   * listener a salted hash to attack offline: README, Threat model), and verified TLS hides it. Replaces
   * node-postgres' own handler, which its client binds when it connects.
   */
  _handleAuthCleartextPassword(message: unknown): void {
    const { connection } = this as unknown as { connection: { stream: { destroy(): void }; emit(event: 'error', err: Error): void } };
    // TLS that verified the server's certificate: one that checks nothing (sslmode=no-verify) would
    // hand the password to whoever answers.
    if (!(connection.stream instanceof TLSSocket && connection.stream.authorized)) {
      connection.emit(
        'error',
        new Error(
          'the database server asked for the password in clear text over a connection without verified TLS: refused, not sent (whoever listens on its address may ask so)',
        ),
      );
      // Closed here, not left to the caller: node-postgres keeps the socket of a connection whose
      // authentication it failed itself, and a listener that held them could use up the worker's
      // descriptors, one per /readyz probe (review GT).
      connection.stream.destroy();
      return;
    }
    (pg.Client.prototype as unknown as { _handleAuthCleartextPassword(this: pg.Client, message: unknown): void })._handleAuthCleartextPassword.call(
      this,
      message,
    );
  }
}

/** DATABASE_CONNECT_TIMEOUT's default. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 60_000;

/**
 * A pool of connections to `connectionString`, each made within `connectTimeoutMs`
 * (DATABASE_CONNECT_TIMEOUT): without a bound, a server that accepts the connection and never
 * answers (a proxy or load balancer whose database is down) held every command, and a SIGTERM past
 * SHUTDOWN_TIMEOUT, for ever.
 */
export function createPool(connectionString: string, max = 4, lockTimeoutMs = DEFAULT_LOCK_TIMEOUT_MS, connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS): pg.Pool {
  // Set on each client, not as the pool's connectionTimeoutMillis: that one also bounds the wait
  // for a free client of the pool, which a run may spend behind another site's.
  class BoundedClient extends DatabaseClient {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis: connectTimeoutMs });
    }

    // A connection that failed to open is ended: node-postgres leaves the socket of one whose
    // authentication it failed itself (a DATABASE_URL without a password, to a server asking for
    // one: its SASL step throws) open until the server's authentication_timeout, a minute by
    // default, and the process, its one-line error printed, could not exit until then.
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const endFailed = () => void this.end().catch(() => undefined);
      if (callback === undefined) {
        return super.connect().catch((err: unknown) => {
          endFailed();
          throw withPasswordFileNoted(this, err);
        });
      }
      const told = callback as (err: Error | null, c?: pg.Client) => void;
      super.connect((err: Error | null, c?: pg.Client) => {
        if (err) endFailed();
        told(err && withPasswordFileNoted(this, err), c);
      });
    }
  }
  const pool = new pg.Pool({
    Client: BoundedClient as unknown as new () => pg.ClientBase,
    max,
    application_name: 'cpq-user-sync',
    // TCP keepalive both ways. A run's connection holds its site's lock: if the machine running
    // it vanishes (a crash, a partition), the server probes the silent connection after a minute
    // idle and drops it within about two, freeing the lock for another worker (the system's
    // default is two hours). And a worker notices a server that vanished.
    keepAlive: true,
    keepAliveInitialDelayMillis: 60_000,
    // search_path: every object of ours is named with its schema (cpq., or a temporary table of
    // the run), so nothing else is looked up: not public, where any role may create functions
    // and operators in a database made by Postgres 14 or older. There a cpq_reader login's
    // public.convert_to(text, text) or %(numeric, integer), closer matches than the built-ins,
    // ran with the sync's rights inside its runs.
    // default_transaction_isolation: every statement and transaction of ours is written for READ
    // COMMITTED, whatever the database's default; under REPEATABLE READ a commit took the
    // commit_seq of another site's run, and concurrent claims of one tick could fail to serialize.
    // DateStyle and IntervalStyle: node-postgres reads times and intervals only as ISO and
    // postgres styles print them; under a database's or role's German or SQL DateStyle every
    // time read back was null and every run failed.
    ...withOptions(
      connectionString,
      `-c tcp_keepalives_idle=60 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=6 -c lock_timeout=${Math.round(lockTimeoutMs)} -c search_path=pg_catalog,pg_temp -c default_transaction_isolation=read\\ committed -c DateStyle=ISO -c IntervalStyle=postgres`,
    ),
  });
  // A client that loses its server must not crash the process, idle or checked out; the next
  // query on it reports the problem.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

export function createDb(pool: pg.Pool): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

import { connect } from 'node:net';
import type pg from 'pg';
import type { Queryable } from './compiled-query.js';

/** What node-postgres keeps of a connection that its type declarations leave out: where it goes, and its backend's key. */
interface ClientKey {
  host: string;
  port: number;
  processID: number | null;
  secretKey: number | null;
  /** The session's socket (TLS over it once encrypted): the address it is connected to, none for a Unix socket. */
  connection?: { stream?: { remoteAddress?: string; remotePort?: number } };
}

/** The protocol's CancelRequest code (1234 in the high 16 bits, 5678 in the low). */
const CANCEL_REQUEST_CODE = 80877102;

/** How long a cancel request may take to be delivered (its connection closed by the server) before it is given up. */
const CANCEL_DELIVERY_MS = 5000;

/**
 * Until the returned function is called, `signal` aborting cancels the statement `client` is
 * running then: it fails with "canceling statement due to user request", its transaction aborted
 * (a session reading its next command ignores the request). A statement waits for a lock for up
 * to SYNC_LOCK_TIMEOUT (30 minutes), and a merge of a large site runs for minutes: a run asked to
 * stop waited them out, past SHUTDOWN_TIMEOUT, and was ended by force, its record left `running`.
 *
 * Postgres' cancel request, sent as libpq's PQcancel sends it: on a connection of its own, without
 * TLS (the server reads it before any encryption or authentication), through no pool, so neither a
 * pool whose connections all wait nor the lock waited for holds it up. Best effort: a request
 * that cannot be delivered leaves the statement to end as it would have.
 *
 * Refuses a signal that has aborted already (throws its reason): a listener added then never
 * fires, and the statement to come, armed against a shutdown that had come, waited as if none had
 * (run.ts's transaction begun after a signal that came while the run waited for a lock before it).
 * And, once it has aborted, refuses every later statement on `client` (its reason, as a rejected
 * promise) until the returned function is called: Postgres ignores a cancel request that reaches
 * a session between statements, reading its next command, and a run's transaction is so whenever
 * it works on another connection or in JavaScript (its last progress write, before the update of
 * its record that waits for another site's commit): the statement it sent next ran uncancelled,
 * waited for its lock, and SHUTDOWN_TIMEOUT ended the process by force. A ROLLBACK is still sent:
 * refused, it left the transaction of the refused statement open on a session going back to its pool.
 *
 * The returned function resolves once a request sent has been delivered (the server closes its
 * connection once it has signalled the session), or given up after CANCEL_DELIVERY_MS: the
 * request cancels whatever the session runs when it arrives, and one still on its way when its
 * statement ended of itself cancelled the next statement on the connection (the run's ROLLBACK
 * or its unlock of the site, or another user of the pool's connection: the failed run's record,
 * left `running`).
 */
export function cancelOnAbort(client: pg.PoolClient, signal: AbortSignal | undefined): () => Promise<void> {
  if (!signal) return async () => undefined;
  signal.throwIfAborted();
  const disarm = refuseOnceAborted(client, signal);
  let delivered: Promise<void> | undefined;
  const onAbort = () => {
    const { host, port, processID, secretKey, connection } = client as unknown as ClientKey;
    if (processID === null || secretKey === null) return;
    const request = Buffer.alloc(16);
    request.writeInt32BE(16, 0);
    request.writeInt32BE(CANCEL_REQUEST_CODE, 4);
    request.writeInt32BE(processID, 8);
    request.writeInt32BE(secretKey, 12);
    // To the address the session's own socket is connected to: a host name with several addresses
    // (round-robin DNS, a failover pair) could give a new connection another server, which has
    // no such session, and the statement waited on. A Unix socket has none: a host that is a
    // folder is where the server's socket is, as node-postgres reads it.
    const { remoteAddress, remotePort } = connection?.stream ?? {};
    const socket =
      remoteAddress !== undefined && remotePort !== undefined
        ? connect(remotePort, remoteAddress)
        : host.startsWith('/')
          ? connect(`${host}/.s.PGSQL.${port}`)
          : connect(port, host);
    socket.on('error', () => undefined);
    socket.setTimeout(CANCEL_DELIVERY_MS, () => socket.destroy());
    delivered = new Promise((resolve) => socket.on('close', () => resolve()));
    // The server closes the connection once it has read the request.
    socket.end(request);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  let stopped = false;
  return async () => {
    // Called twice by run.ts when a signal came as its transaction ended (stopped, then rolled back).
    if (!stopped) {
      stopped = true;
      signal.removeEventListener('abort', onAbort);
      disarm();
    }
    await delivered;
  };
}

/** The clients cancelOnAbort has armed: the signals armed on each, and what puts back its own query. */
const armed = new WeakMap<pg.ClientBase, { signals: AbortSignal[]; restore: () => void }>();

/**
 * Has `client` refuse its statements but a ROLLBACK once `signal` (or another signal armed on it)
 * has aborted (see cancelOnAbort); returns what disarms it. Its query is wrapped on the instance
 * while any signal is armed on it, and put back as it was once none is.
 */
function refuseOnceAborted(client: pg.ClientBase, signal: AbortSignal): () => void {
  let guard = armed.get(client);
  if (guard === undefined) {
    const own = Object.getOwnPropertyDescriptor(client, 'query');
    // Called on the client, as node-postgres calls it.
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    const signals: AbortSignal[] = [];
    const refusing = (...args: unknown[]): unknown => {
      const aborted = signals.find((s) => s.aborted);
      if (aborted === undefined || (typeof args[0] === 'string' && /^\s*rollback\b/i.test(args[0]))) return query(...args);
      const reason: unknown = aborted.reason;
      const callback = args.at(-1);
      if (typeof callback === 'function') {
        queueMicrotask(() => (callback as (err: unknown) => void)(reason));
        return undefined;
      }
      // A COPY's or a cursor's stream: thrown, in the async function that asks for it.
      if (typeof (args[0] as { submit?: unknown } | null)?.submit === 'function') throw reason;
      return Promise.reject(reason instanceof Error ? reason : new Error(String(reason)));
    };
    Object.defineProperty(client, 'query', { value: refusing, configurable: true, writable: true });
    const restore = () => {
      if (own === undefined) delete (client as { query?: unknown }).query;
      else Object.defineProperty(client, 'query', own);
    };
    guard = { signals, restore };
    armed.set(client, guard);
  }
  const { signals } = guard;
  signals.push(signal);
  return () => {
    signals.splice(signals.indexOf(signal), 1);
    if (signals.length > 0) return;
    armed.delete(client);
    guard.restore();
  };
}

/**
 * `pool` as a run's statements outside its transaction use it (committed state, ids, the clock):
 * each on a connection of its own that `signal` cancels as cancelOnAbort does, none started once
 * it has aborted. Such a statement can wait for a lock too: one asked for cpq.users whole (a
 * VACUUM FULL, another tool's migration) queues behind the run's own transaction, and a read of the
 * table on another connection queues behind it, until SYNC_LOCK_TIMEOUT, while the run waits for it.
 */
export function cancellableOn(pool: pg.Pool, signal: AbortSignal | undefined): Queryable {
  return {
    async query(text, values) {
      signal?.throwIfAborted();
      // The pool's connections all busy (its other statements waiting for that lock), this one
      // may come when a cancelled one lets go of it, after the signal: cancelOnAbort refuses it.
      const client = await pool.connect();
      try {
        return await cancellableQuery(client, signal, text, values);
      } finally {
        client.release();
      }
    },
  };
}

/**
 * `pool` for a Kysely instance (createDb) whose statements may wait for locks through a shutdown
 * (the migrations a run or a worker applies first): each statement of each of its connections
 * cancelled by `signal` as cancelOnAbort does, none started once it has aborted. A transaction
 * whose ROLLBACK is refused so ends all the same: Kysely discards its connection, and the server
 * rolls back what the connection's end leaves open.
 */
export function cancellablePool(pool: pg.Pool, signal: AbortSignal | undefined): pg.Pool {
  const connections = {
    async connect() {
      signal?.throwIfAborted();
      const client = await pool.connect();
      return {
        query: (text: string, values?: unknown[]) => cancellableQuery(client, signal, text, values),
        // Released once the signal came, a statement of it may have been refused midway (after the
        // migrations' commit: Kysely's unlock of its session-level migration lock, putting back the
        // limits the session took off): discarded, its session's end letting go of what it holds.
        release: (destroy?: boolean | Error) => client.release(destroy || signal?.aborted === true),
      };
    },
    // The pool is its owner's to end.
    end: async () => undefined,
  };
  // Only what Kysely's PostgresDialect asks of a pool (connect, end) and of its clients (query, release).
  return connections as unknown as pg.Pool;
}

/**
 * `client` (a session the caller holds: a run's, across its site's lock and its transaction) as
 * its statements outside that transaction use it: each cancelled by `signal` as cancelOnAbort
 * does, none started once it has aborted, and a cancel sent delivered before the next statement.
 */
export function cancellableSession(client: pg.PoolClient, signal: AbortSignal | undefined): Queryable {
  return { query: (text, values) => cancellableQuery(client, signal, text, values) };
}

/** One statement on `client`, cancelled by `signal` (cancelOnAbort); its cancel, if sent, delivered before it returns. */
async function cancellableQuery(client: pg.PoolClient, signal: AbortSignal | undefined, text: string, values: unknown[] | undefined) {
  const stop = cancelOnAbort(client, signal);
  try {
    return await client.query(text, values);
  } finally {
    await stop();
  }
}

import { getEventListeners } from 'node:events';
import { createServer, Socket } from 'node:net';
import pg from 'pg';
import { describe, expect } from 'vitest';
import { cancelOnAbort, cancellableOn } from '../src/db/cancel-on-abort.js';
import { createTestDatabase } from './helpers/database.js';
import { it } from './helpers/harness.js';

/*
 * A worker passes one signal, its own, to every run for the life of the process. Node 20 keeps a
 * signal made from it by AbortSignal.any, while that signal has listeners (a run's reads add some),
 * for as long as the worker's signal lives: about 1 KB per run, never given back (review EF's
 * soak). A run must leave nothing behind on the signal it was given.
 */

/** The signals Node made from `signal` with AbortSignal.any and still tracks (an internal of Node's AbortSignal). */
function signalsMadeFrom(signal: AbortSignal): number {
  const symbol = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  const made = symbol === undefined ? undefined : (signal as unknown as Record<symbol, Set<WeakRef<AbortSignal>> | undefined>)[symbol];
  return made?.size ?? 0;
}

describe("the signal a run is given (the worker's, for the life of the process)", () => {
  it('sees what AbortSignal.any makes from a signal (the check itself can fail)', () => {
    const source = new AbortController();
    expect(signalsMadeFrom(source.signal)).toBe(0);
    AbortSignal.any([source.signal, new AbortController().signal]).addEventListener('abort', () => undefined);
    expect(signalsMadeFrom(source.signal)).toBe(1);
  });

  it('keeps no signal made from it, nor a listener, once runs end, succeeded or failed', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 6, integrationUsers: 0 }, { CPQ_COMPANIES: '*', CPQ_PAGE_SIZE: '2' });
    const worker = new AbortController();
    await h.sync({ signal: worker.signal });
    await h.sync({ signal: worker.signal });
    h.sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, status: 400, times: 1 });
    await expect(h.sync({ signal: worker.signal })).rejects.toThrow();
    expect(signalsMadeFrom(worker.signal)).toBe(0);
    expect(getEventListeners(worker.signal, 'abort')).toEqual([]);
  });
});

describe('a cancel armed on a signal that has aborted already', () => {
  // A listener added to an aborted signal never fires: the statement armed so waited for its lock
  // as if no shutdown had come. Each caller had to check the signal itself, right after arming.
  it('is refused: cancelOnAbort throws the reason, and a statement through cancellableOn is not started', async () => {
    const t = await createTestDatabase();
    try {
      const stopped = new AbortController();
      stopped.abort(new Error('shutting down'));
      const client = await t.pool.connect();
      try {
        expect(() => cancelOnAbort(client, stopped.signal)).toThrow('shutting down');
      } finally {
        client.release();
      }
      const before = (await t.query<{ n: number }>(`SELECT count(*)::int AS n FROM cpq.sites`))[0]!.n;
      await expect(cancellableOn(t.pool, stopped.signal).query(`INSERT INTO cpq.sites (name) VALUES ('refused')`)).rejects.toThrow('shutting down');
      expect(await t.query(`SELECT count(*)::int AS n FROM cpq.sites`)).toEqual([{ n: before }]);
    } finally {
      await t.drop();
    }
  });
});

describe("a signal's cancel request", () => {
  // A host name with several addresses (round-robin DNS, a failover pair), looked up again for the
  // cancel's connection, may lead to another server than the session's, which has no such session:
  // the statement waited on through the shutdown.
  it("goes to the address the session's socket is connected to, not to where its configured host leads now", async () => {
    const t = await createTestDatabase();
    const server = new URL(t.url);
    // Where the configured host leads now: a server that takes a connection and answers nothing, as
    // another Postgres does a cancel for a session it does not have.
    const reachedElsewhere: Socket[] = [];
    const elsewhere = createServer((socket) => {
      reachedElsewhere.push(socket.on('error', () => undefined));
      socket.end();
    });
    await new Promise<void>((resolve) => elsewhere.listen(63321, '127.0.0.1', resolve));
    const configured = new URL(t.url);
    configured.hostname = '127.0.0.1';
    configured.port = '63321';
    const pool = new pg.Pool({
      connectionString: configured.toString(),
      max: 1,
      // The session's socket reaches the server itself, as the name led when it connected.
      stream: () => {
        const socket = new Socket();
        const connectTo = socket.connect.bind(socket);
        socket.connect = () => connectTo(Number(server.port), server.hostname);
        return socket;
      },
    });
    try {
      const client = await pool.connect();
      try {
        const stopping = new AbortController();
        const stop = cancelOnAbort(client, stopping.signal);
        const started = Date.now();
        const sleeping = client.query('SELECT pg_sleep(20)');
        setTimeout(() => stopping.abort(), 500);
        await expect(sleeping).rejects.toThrow('canceling statement due to user request');
        await stop();
        // Before: the cancel went to 127.0.0.1:63321, and the statement slept its 20 s.
        expect({ within10s: Date.now() - started < 10_000, reachedElsewhere: reachedElsewhere.length }).toEqual({ within10s: true, reachedElsewhere: 0 });
      } finally {
        client.release();
      }
    } finally {
      await pool.end();
      for (const socket of reachedElsewhere) socket.destroy();
      await new Promise((resolve) => elsewhere.close(resolve));
      await t.drop();
    }
  }, 60_000);
});

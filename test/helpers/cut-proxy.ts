import { connect, createServer } from 'node:net';
import { listenInFrontOf, proxySockets } from './loopback-proxy.js';

export interface CutProxy {
  /** `url`, its host and port the proxy's. */
  url: string;
  /** Whether the connection was cut. */
  readonly cut: boolean;
  /** Ends every connection through the proxy and stops it listening. */
  close: () => Promise<void>;
}

/**
 * A TCP proxy on loopback in front of `url`'s server that cuts one connection once, by `rule`:
 * - `commit-answer`: the answer to a COMMIT is lost. The first `COMMIT` sent (a simple query) on a
 *   connection whose transaction began with `BEGIN ISOLATION LEVEL READ COMMITTED` (a run's,
 *   forget's) is passed on to the server, which commits, and the client's connection is cut at
 *   once, before the answer comes.
 * - `{ commitLateMs }`: the same, but the COMMIT reaches the server only that long after the
 *   client's connection is cut: a server still committing (a slow fsync, a synchronous standby)
 *   when the client asks, on another connection, whether it did.
 * - a pattern: the first query matching it (simple, or a prepared statement's text) is not sent,
 *   and the connection is cut both ways: the connection lost as a command is about to ask it.
 * Every other message passes as it is. Postgres's protocol: a first (startup) message of a length
 * and a body, then messages of a type byte and a length.
 */
export async function cutProxy(url: string, rule: 'commit-answer' | { commitLateMs: number } | RegExp): Promise<CutProxy> {
  const target = new URL(url);
  const { sockets, keep } = proxySockets();
  let cut = false;
  const server = createServer((client) => {
    keep(client);
    const upstream = keep(connect(Number(target.port), target.hostname));
    upstream.on('data', (d: Buffer) => client.write(d));
    upstream.on('close', () => client.destroy());
    let pending = Buffer.alloc(0);
    let started = false;
    let inTransaction = false;
    client.on('close', () => {
      // Once the COMMIT is passed on, the server's connection stays until it has answered (it commits).
      if (!cut || !inTransaction) upstream.destroy();
    });
    client.on('data', (data: Buffer) => {
      pending = Buffer.concat([pending, data]);
      for (;;) {
        const header = started ? 5 : 4;
        if (pending.length < header) return;
        const length = (started ? pending.readInt32BE(1) : pending.readInt32BE(0)) + (started ? 1 : 0);
        if (pending.length < length) return;
        const message = pending.subarray(0, length);
        pending = pending.subarray(length);
        const query = started ? queryOf(message) : undefined;
        started = true;
        if (!cut && rule instanceof RegExp && query !== undefined && rule.test(query)) {
          cut = true;
          client.destroy();
          upstream.destroy();
          return;
        }
        if (query?.startsWith('BEGIN ISOLATION LEVEL READ COMMITTED')) inTransaction = true;
        if (!cut && !(rule instanceof RegExp) && inTransaction && query === 'COMMIT') {
          cut = true;
          client.destroy();
          const commit = () => {
            upstream.write(message);
            upstream.once('data', () => setTimeout(() => upstream.destroy(), 50));
          };
          if (rule === 'commit-answer') commit();
          else setTimeout(commit, rule.commitLateMs);
          return;
        }
        upstream.write(message);
      }
    });
  });
  const proxy = await listenInFrontOf(server, url, sockets);
  return {
    ...proxy,
    get cut() {
      return cut;
    },
  };
}

/** The SQL of a simple query (Q: its text) or of a statement prepared (P: a name, then its text), trimmed; undefined for other messages. */
function queryOf(message: Buffer): string | undefined {
  const body = message.subarray(5);
  if (message[0] === 0x51)
    return body
      .subarray(0, body.length - 1)
      .toString('utf8')
      .trim();
  if (message[0] !== 0x50) return undefined;
  const textAt = body.indexOf(0) + 1;
  return body.subarray(textAt, body.indexOf(0, textAt)).toString('utf8').trim();
}

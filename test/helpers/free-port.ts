import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Ports freePort picks from: below the kernel's ephemeral range (see freePort), above the well-known ones. */
const LOWEST = 10_000;

/** The range the kernel hands ports out of to a bind of port 0 (Linux; elsewhere its default). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    // not Linux
  }
  return [49152, 65535];
}

/** Listens on `port` (0: one the kernel picks) on loopback, and closes it again: the port it had, or undefined when it could not listen. */
function listenOnce(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as { port: number };
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A TCP port on loopback that was free a moment ago, for a server that must be told its port
 * (Postgres cannot listen on port 0 and say where it listens) or for an address nothing listens
 * on. The port is closed again before it is used, so another process may take it meanwhile. To
 * make that unlikely it is picked at random below the kernel's ephemeral range: every port-0
 * bind of the suite's processes (simulators, health servers, test servers) lands in that range,
 * and a port picked there and closed could be handed to the next of them; below it, only
 * another freePort picking the same one of some twenty thousand ports can take it. (The CLI's
 * embedded Postgres, EMBEDDED_PG_PORT, listens on no TCP port at all: the number only names its
 * socket in a private folder.)
 */
export async function freePort(): Promise<number> {
  const [ephemeralLow] = ephemeralRange();
  if (ephemeralLow - LOWEST >= 1000) {
    for (let tries = 0; tries < 50; tries++) {
      const port = LOWEST + Math.floor(Math.random() * (ephemeralLow - LOWEST));
      if ((await listenOnce(port)) !== undefined) return port;
    }
  }
  // No room below the ephemeral range, or every pick taken: one the kernel picks.
  const port = await listenOnce(0);
  if (port === undefined) throw new Error('freePort: cannot listen on 127.0.0.1');
  return port;
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '../logger.js';
import type { WorkerMetrics } from './metrics.js';
import { publicReadiness, type ReadinessReport } from './readiness.js';
import { errorMessage } from '../errors.js';

export interface HealthServerOptions {
  /** HTTP_PORT; 0 picks a free port (tests). */
  port: number;
  /** HTTP_HOST. Default: every interface, so that Prometheus and orchestrators outside the container reach it. */
  host?: string;
  readiness: () => Promise<ReadinessReport>;
  metrics: WorkerMetrics;
  log: Logger;
}

/**
 * Connections served at once; more are closed as they arrive. Probes and a scraper need a few;
 * many more leave room for probes while someone holds connections open (each for at most
 * HEADERS_TIMEOUT_MS), and far fewer than the descriptors a process has (1,024 at the least).
 */
export const MAX_CONNECTIONS = 256;
/** A connection that has not sent a request's headers by then is closed, one that sends nothing at all too. */
export const HEADERS_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 10_000;
const KEEP_ALIVE_TIMEOUT_MS = 2_000;

/**
 * /healthz (the process is up and answering), /readyz (database reachable, runs not failing
 * beyond SYNC_STALE_AFTER) and /metrics (Prometheus). Read-only GET/HEAD; no credentials
 * appear in any answer.
 *
 * /readyz says ready or not and the age of the last success, to every client alike: the
 * reasons (database errors, a failed run's error text with URLs, logins, field values) go to
 * the worker's log when readiness changes, never over HTTP. Telling loopback clients more would
 * not be safe: a proxy or service-mesh sidecar on the host makes every stranger a loopback client.
 */
export class HealthServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** The last verdict logged, so a change is logged once, not once per probe. */
  private lastVerdict: string | undefined;

  constructor(private readonly options: HealthServerOptions) {}

  /** Starts listening; resolves with the port (useful with port 0). */
  async start(): Promise<number> {
    // The port may be reachable by anyone (see above): idle connections held open would take the
    // process's file descriptors, which its syncs need (a reviewer's 1,100 stopped every run with
    // EMFILE). So few connections at once, and each must send its request within seconds.
    const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 500 }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.options.log.error({ error: errorMessage(err), path: req.url }, 'health endpoint failed');
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
    });
    server.maxConnections = MAX_CONNECTIONS;
    server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    const port = (server.address() as AddressInfo).port;
    this.options.log.info({ port }, 'health and metrics listening (/healthz, /readyz, /metrics)');
    return port;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    const path = new URL(req.url ?? '/', 'http://health.invalid').pathname;
    switch (path) {
      case '/healthz': {
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      }
      case '/readyz': {
        const report = await this.options.readiness();
        this.logChange(report);
        send(res, report.ready ? 200 : 503, 'application/json; charset=utf-8', `${JSON.stringify(publicReadiness(report))}\n`);
        return;
      }
      case '/metrics': {
        send(res, 200, this.options.metrics.contentType, await this.options.metrics.text());
        return;
      }
      default: {
        send(res, 404, 'text/plain; charset=utf-8', 'not found: try /healthz, /readyz or /metrics\n');
        return;
      }
    }
  }

  private logChange(report: ReadinessReport): void {
    const verdict = `${report.ready}|${report.database}|${report.sites.map((s) => `${s.site}:${s.runs}`).join('|')}`;
    if (verdict === this.lastVerdict) return;
    this.lastVerdict = verdict;
    const details = {
      database: report.database,
      staleSites: report.staleSites,
      sites: report.sites.map(({ site, runs, lastRun }) => ({ site, runs, lastRun })),
    };
    if (report.ready) this.options.log.info(details, 'readiness: ready');
    else this.options.log.warn(details, 'readiness: not ready');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Keep-alive connections from scrapers would otherwise hold close() open.
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

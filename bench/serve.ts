// scratch (not committed): keeps a simulator and an embedded Postgres up for manual profiling
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres } from '../src/db/embedded.js';
import { CpqSimulator } from '../src/simulator/index.js';
import { freePort } from '../test/helpers/free-port.js';
const users = Number(process.argv[2] ?? 100000);
const dir = await mkdtemp(join(tmpdir(), 'cpq-serve-'));
await chmod(dir, 0o755);
const sim = new CpqSimulator({ seed: 1, partnerCompanies: 3, usersPerCompany: users / 4, integrationUsers: 0, drift: true, zipExport: {} });
const baseUrl = await sim.start(await freePort());
const db = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), port: await freePort(), database: 'prof', persistent: false });
console.log(JSON.stringify({ baseUrl, db: db.url, companies: sim.companyLogins().join(',') }));
process.on('SIGTERM', async () => { await sim.stop(); await db.stop(); process.exit(0); });

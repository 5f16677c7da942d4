import { ConfigError, loadConfig, withoutSiteSettings, type AppConfig, type SiteConfig } from './config.js';
import { openDatabase } from './db/connect.js';
import { markDemoDatabase, readHoldsCpqTables, readIsDemoDatabase } from './db/sql/demo-database.js';
import { noSchemaUsageError } from './db/migrate.js';
import { readSiteNames } from './db/sql/read-site-names.js';
import { headOf } from './exact-json.js';
import type { Logger } from './logger.js';
import { CpqSimulator } from './simulator/index.js';
import { runSites } from './sync/run-sites.js';
import type { RunResult } from './sync/run-types.js';
import { textTable } from './text-table.js';

/** Query rows as a terminal table (textTable), each cell at most 48 characters. */
function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '(no rows)';
  const columns = Object.keys(rows[0]!);
  const cell = (v: unknown) => {
    const text =
      v instanceof Date
        ? v.toISOString()
        : v === null
          ? ''
          : typeof v === 'object'
            ? JSON.stringify(v)
            : typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === undefined
              ? String(v)
              : typeof v;
    return text.length > 48 ? `${headOf(text, 47)}…` : text;
  };
  return textTable(
    columns,
    rows.map((r) => columns.map((c) => cell(r[c]))),
    new Set(),
    { rule: true },
  ).join('\n');
}

const SAMPLE_QUERY = `SELECT site, company_login, count(*) AS users,
       count(*) FILTER (WHERE is_user_admin_perm_enabled) AS admins,
       count(*) FILTER (WHERE is_integration_user) AS integration
FROM cpq.users WHERE deleted_at IS NULL
GROUP BY site, company_login ORDER BY site, company_login`;

const CHANGES_QUERY = `SELECT site, change, company_login || '/' || login AS "user", field,
       coalesce(old_value::text, '') AS old, coalesce(new_value::text, added::text, '') AS new, coalesce(removed::text, '') AS removed
FROM cpq.user_changes_flat WHERE run_id = ANY($1::bigint[]) AND field NOT IN ('date_modified') ORDER BY change_id, field`;

/** Runs every site of `config` once; the results, or the first failure thrown. */
async function syncAll(deps: Parameters<typeof runSites>[0], full: boolean): Promise<RunResult[]> {
  // The simulated sites listen on new ports each time: the same CPQs, moved.
  const outcomes = await runSites(deps, deps.config.sites, { full, cpqMoved: true }, deps.config.sites.length);
  for (const o of outcomes) if (o.error) throw o.error;
  return outcomes.map((o) => o.result!);
}

/** The demo's simulated sites. */
const DEMO_SITES = ['emea', 'americas'];

/**
 * The demo: two simulated Fusion sites, `emea` (3 companies, 1,000 users each, integration users)
 * and `americas` (a smaller one), and the embedded Postgres; a full sync of both, a few edits in
 * CPQ, an incremental sync, and a summary.
 */
export async function runDemo(base: AppConfig, log: Logger): Promise<void> {
  const simulator = new CpqSimulator({ seed: 7, partnerCompanies: 2, usersPerCompany: 1000, integrationUsers: 5, pathPrefix: '/cpq', zipExport: {} });
  const americas = new CpqSimulator({ seed: 8, partnerCompanies: 1, usersPerCompany: 300, integrationUsers: 2, pathPrefix: '/cpq', zipExport: {} });
  // Stopped however the demo ends: a database that fails to open left both listening, and the
  // process never exited (review HK).
  try {
    const url = await simulator.start();
    const americasUrl = await americas.start();
    // Nothing of a real setup (a production .env in this folder) reaches the demo: no site and no
    // alert webhook (it would get signed alerts about simulated users). DATABASE_URL is kept, for a
    // demo database of one's own; the check below keeps the demo out of one that holds real sites.
    const env = withoutSiteSettings(process.env);
    const site = (name: string, baseUrl: string): SiteConfig => {
      const loaded = loadConfig({ ...env, CPQ_BASE_URL: baseUrl, CPQ_PATH_PREFIX: '/cpq', CPQ_COMPANIES: '*' });
      return { ...loaded.sites[0]!, name };
    };
    const loaded = loadConfig({ ...env, CPQ_BASE_URL: url });
    const config = { ...loaded, sites: [site('emea', url), site('americas', americasUrl)], logLevel: base.logLevel };
    const database = await openDatabase(config, log, { databaseName: 'cpq_demo', concurrentRuns: 2 });
    try {
      // With DATABASE_URL, a database of the operator's: the demo writes only into one that no run
      // has used (nothing to protect) or one it marked itself, never beside real sites, whatever
      // their names. Its embedded Postgres is its own.
      if (config.databaseUrl) {
        // No cpq.sites: no schema (nothing to protect), or one of a release before sites (refused).
        // A role without USAGE on schema cpq is told so, as by every command that writes, not that
        // the database holds a release before sites.
        const sites = await readSiteNames(database.pool).catch(async (err: unknown) => {
          const denied = await noSchemaUsageError(database.pool, err, 'write');
          if (denied) throw denied;
          return undefined;
        });
        const refused =
          sites === undefined
            ? await readHoldsCpqTables(database.pool)
            : sites.some((s) => !DEMO_SITES.includes(s)) || (sites.length > 0 && !(await readIsDemoDatabase(database.pool)));
        if (refused) {
          throw new ConfigError(
            `demo: DATABASE_URL names a database that holds cpq tables not written by the demo (sites: ${sites?.join(', ') ?? '(a release before sites)'}); the demo writes simulated sites (${DEMO_SITES.join(', ')}) and would mix them in: unset DATABASE_URL (the demo then uses its own embedded Postgres) or name an empty database`,
          );
        }
        await markDemoDatabase(database.pool);
      }
      const out = (text: string) => process.stdout.write(`${text}\n`);
      out(
        `\nSimulated CPQ sites: emea at ${url}, americas at ${americasUrl}; database: ${database.where}${config.databaseUrl ? '' : ' (database cpq_demo)'}\n`,
      );
      const first = await syncAll({ ...database, config, log }, true);

      const [host, partner] = [simulator.users('_host'), simulator.users('partner1')];
      const [renamed, grouped, ungrouped] = [String(host[0]!.login), String(partner[1]!.login), String(host[2]!.login)];
      simulator.updateUser('_host', renamed, { lastName: 'Renamed-in-CPQ' });
      simulator.addGroup('partner1', grouped, { variableName: 'demoAuditors', label: 'Demo Auditors', type: 'Administrator' });
      simulator.removeGroup('_host', ungrouped, (host[2]!.groups as { items: { variableName: string }[] }).items[0]!.variableName);
      const added = simulator.addUser('partner2', { firstName: 'Nova', lastName: 'Added' });
      out(`\nChanged in CPQ: renamed ${renamed}, added a group to partner1/${grouped}, removed one from ${ungrouped}, added partner2/${added}\n`);
      const second = await syncAll({ ...database, config, log }, false);

      out('\nRuns:');
      for (const r of [...first, ...second]) {
        out(
          `  site ${r.site}, run ${r.runId}: ${r.mode}, ${r.pages} pages, ${r.seen} users seen: ${r.inserted} inserted, ${r.updated} updated, ` +
            `${r.restored} restored, ${r.deleted} deleted, ${r.unchanged} unchanged`,
        );
      }
      out(`\nWhat changed in the second run (cpq.user_changes_flat):\n`);
      out(table((await database.pool.query<Record<string, unknown>>(CHANGES_QUERY, [second.map((r) => r.runId)])).rows));
      out(`\nA sample query:\n\n${SAMPLE_QUERY}\n`);
      out(table((await database.pool.query<Record<string, unknown>>(SAMPLE_QUERY)).rows));
      out(
        config.databaseUrl
          ? `\nThe data stays in ${database.where}. Sync a real site into another database: a run into this one would mix it with the simulated sites.\n`
          : `\nThe data stays in ${database.where}, database cpq_demo (the embedded server runs only while a command does, on a private socket: to query the demo with other tools, run it with DATABASE_URL set). Point CPQ_BASE_URL at a real site and run \`npx cpq-sync run\` to sync it (database cpq_sync there).\n`,
      );
    } finally {
      await database.close();
    }
  } finally {
    await simulator.stop();
    await americas.stop();
  }
}

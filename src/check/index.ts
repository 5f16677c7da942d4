import { withDotenvWarnings } from '../dotenv-file.js';
import { ConfigError, loadConfig, selectSites, withLikelyTypos, type AppConfig, type SiteConfig } from '../config.js';
import { errorMessage, printable } from '../errors.js';
import { createLogger } from '../logger.js';
import { siteKeysIn } from '../sites-file.js';
import { checkDatabase } from './database.js';
import { shortDurationWarnings } from './durations.js';
import { checkSite } from './site.js';
import { fail, pass, warn, type StepResult, type StepStatus } from './step.js';

export { checkDatabase, checkSchema, checkSiteCpq, checkSyncLock } from './database.js';
export { checkAccess, checkCompanies, checkHost, checkIntegrationUsers, checkSite, checkUsers, checkZipExport } from './site.js';
export type { StepResult, StepStatus } from './step.js';

/** One block of the report: a site, or the database. */
export interface CheckBlock {
  name: string;
  /** The site's address or where the database is (password hidden). */
  where: string;
  steps: StepResult[];
}

export interface CheckReport {
  /** Every step passed (warnings pass). */
  ok: boolean;
  configuration: StepResult;
  sites: CheckBlock[];
  /** null when the configuration failed: no database to look at. */
  database: CheckBlock | null;
}

/**
 * `cpq-sync check`: the configuration, then each site's steps (every configured site, or those
 * named), then the database's. Writes nothing: no migration, no run record, no file (logs of
 * retries go to stderr).
 */
export async function runCheck(env: Record<string, string | undefined> = process.env, siteNames: readonly string[] = []): Promise<CheckReport> {
  let config: AppConfig;
  let sites: SiteConfig[];
  try {
    config = withDotenvWarnings(loadConfig(env));
    sites = selectSites(config, siteNames);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // A --site the configuration does not name is fixed on the command line, not in the configuration.
    const fix = errorMessage(err).startsWith('--site: ')
      ? 'name one of the sites listed, or leave --site out to check every one'
      : 'see .env.example and the Configuration section of the README';
    return { ok: false, configuration: fail('configuration', withLikelyTypos(errorMessage(err), env), fix), sites: [], database: null };
  }
  const log = createLogger({ level: config.logLevel, format: config.logFormat, destination: process.stderr });
  const blocks: CheckBlock[] = [];
  // A site of CPQ_SITES_FILE is set by its keys there (pathPrefix, companies), which win over the
  // environment's variables: its steps name those, or an operator would edit .env to no effect.
  const ofSitesFile = config.cpq === undefined;
  for (const site of sites) {
    const steps = await checkSite(site.cpq, log);
    blocks.push({
      name: site.name,
      where: site.cpq.baseUrl,
      steps: ofSitesFile ? steps.map((step) => inSiteKeys(step, site.cpq.authInSitesFile !== true)) : steps,
    });
  }
  const db = await checkDatabase(config, log, sites);
  const database = { name: 'database', where: db.where, steps: db.steps };
  const ok = [...blocks, database].every((b) => b.steps.every((s) => s.status !== 'fail'));
  const notes = [...config.unknownVariables, ...config.warnings, ...shortDurationWarnings(config, sites)];
  // Each of config.warnings (and of shortDurationWarnings) says what to do itself (a readable secret file: chmod 600 it; two
  // sites reading one CPQ: remove one): a fix of its own for every warning named the wrong one.
  const fix = unknownVariablesFix(config);
  const configuration = notes.length === 0 ? pass('configuration', 'valid') : warn('configuration', `valid; ${notes.join('; ')}`, fix);
  return { ok, configuration, sites: blocks, database };
}

/**
 * What to do of the variables cpq-sync does not read: "its setting is at its default" was said of
 * CPQ_COMPANYS beside CPQ_COMPANIES=* too, where the variable it misspells is set (review JB).
 */
function unknownVariablesFix(config: AppConfig): string | undefined {
  if (config.unknownVariables.length === 0) return undefined;
  const beside = config.typosBesideTheirVariable;
  const parts = beside.map(
    ({ name, variable }) => `remove ${name}: ${variable} is set, and ${name} changes nothing (or, if its value is the one meant, put it in ${variable})`,
  );
  if (config.unknownVariables.length > beside.length) {
    parts.push(`${beside.length > 0 ? 'of the others: ' : ''}correct the name, or remove the variable (its setting is at its default)`);
  }
  return parts.join('; ');
}

const MARKS: Record<StepStatus, string> = { pass: '✓', warn: '!', fail: '✗', skip: '-' };

function formatSteps(steps: StepResult[]): string {
  const width = Math.max(...steps.map((s) => s.step.length));
  // Details name what CPQ sent (companies, error bodies): printable, so they cannot act on the terminal.
  return steps
    .map((s) => `  ${MARKS[s.status]} ${s.step.padEnd(width)}  ${printable(s.detail)}${s.fix ? `\n    ${' '.repeat(width)}  fix: ${printable(s.fix)}` : ''}\n`)
    .join('');
}

/** The report for people: one line per step with its mark, and the fix under a failure or warning. */
export function formatCheck(report: CheckReport): string {
  let out = formatSteps([report.configuration]);
  for (const block of [...report.sites, ...(report.database ? [report.database] : [])]) {
    out += `${block.name === 'database' ? 'database' : `site ${block.name}`} (${block.where})\n${formatSteps(block.steps)}`;
  }
  return `${out}${report.ok ? 'all checks passed' : 'some checks failed'}\n`;
}

/** Exit code of `check`: 0 when every step passed, 2 for a configuration error, 1 for any other failure. */
export function checkExitCode(report: CheckReport): number {
  if (report.configuration.status === 'fail') return 2;
  return report.ok ? 0 : 1;
}

/**
 * A step of a CPQ_SITES_FILE site, its variables named as the site's keys (CPQ_PATH_PREFIX:
 * pathPrefix); the auth variables too when the site's auth is its own (siteKeysIn).
 */
function inSiteKeys(step: StepResult, authFromEnvironment: boolean): StepResult {
  const keys = (text: string) => siteKeysIn(text, authFromEnvironment);
  return { ...step, detail: keys(step.detail), ...(step.fix === undefined ? {} : { fix: keys(step.fix) }) };
}

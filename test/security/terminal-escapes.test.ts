import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oneLine, printable } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { formatChain } from '../../src/sync/verify.js';
import { WorkerMetrics } from '../../src/worker/metrics.js';
import { cli } from '../helpers/cli-process.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

/*
 * What CPQ sends reaches the operator's terminal: company names in `check` and in the progress
 * lines, error bodies in the one-line error of `run` and in `status`. A hostile site (or anyone on
 * the path) put escape sequences there: a terminal retitled, lines recoloured or erased (a ✗ hidden),
 * on some terminals the clipboard written (OSC 52). Control characters are now written as \xNN.
 * A bidirectional override and a line separator showed another name, and a line never written
 * (review HA): the characters that reorder text are written as \uXXXX.
 */

const ESCAPES = '\u001b]0;PWNED-TITLE\u0007\u001b[31mRED\u001b[0m\u001b[2K\u009b';
const REORDERING = '\u202egpj.exe\u202c\u2028FORGED: \u2066✓\u2069 all good\u200f\u061c\u2029';
const REORDERING_SHOWN = '\\u202egpj.exe\\u202c\\u2028FORGED: \\u2066✓\\u2069 all good\\u200f\\u061c\\u2029';
const EVIL = `evil${ESCAPES}${REORDERING}`;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

let server: Server | undefined;
let baseUrl = '';
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    if (path === '/rest/v16/companies') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ items: [{ loginName: '_host', isHost: true }, { loginName: EVIL }], hasMore: false }));
    }
    if (path === '/rest/v16/companies/_host/users') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(JSON.stringify({ items: [], hasMore: false, totalResults: 0 }));
    }
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`bad request for ${EVIL}`);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => server?.close(() => resolve()));
  await database.drop();
});

describe("CPQ's text never reaches the terminal as control characters", () => {
  it('printable and oneLine write each control character as \\xNN, each character that reorders text as \\uXXXX, and keep the rest', () => {
    expect(printable(`a${ESCAPES}b é ✓`)).toBe('a\\x1b]0;PWNED-TITLE\\x07\\x1b[31mRED\\x1b[0m\\x1b[2K\\x9bb é ✓');
    expect(oneLine(`first\r\n  second\tthird\u001b[2K`)).toBe('first second third\\x1b[2K');
    expect(printable(`partner${REORDERING}`)).toBe(`partner${REORDERING_SHOWN}`);
    expect(oneLine(`a\u2028b`)).toBe('a\\u2028b');
  });

  it('run (its error line), status (the stored error) and check (the company list) show the escapes as text', async () => {
    const env = { DATABASE_URL: database.url, CPQ_BASE_URL: baseUrl, CPQ_COMPANIES: '*', CPQ_INTEGRATION_USERS: 'off', LOG_LEVEL: 'warn' };
    const run = await cli(['run'], env);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toContain('\\x1b]0;PWNED-TITLE\\x07');
    expect(run.stderr).not.toMatch(CONTROL);

    const status = await cli(['status'], env);
    expect(status.stdout).toContain('LAST RUN FAILED');
    expect(status.stdout).toContain('\\x1b');
    expect(status.stdout).not.toMatch(CONTROL);

    const check = await cli(['check'], env);
    expect(check.stdout).toContain(`evil\\x1b]0;PWNED-TITLE\\x07`);
    expect(check.stdout).toContain(REORDERING_SHOWN);
    expect(check.stdout).not.toMatch(CONTROL);
  });

  it('status, check and alerts list with --json write DEL and the C1 controls as \\u escapes (review GS): the same JSON values, which no terminal runs', async () => {
    const env = { DATABASE_URL: database.url, CPQ_BASE_URL: baseUrl, CPQ_COMPANIES: '*', CPQ_INTEGRATION_USERS: 'off', LOG_LEVEL: 'warn' };
    expect((await cli(['run'], env)).code).not.toBe(0);
    // An alert of a login CPQ named so (JSON.stringify escapes its ESC, not its CSI, U+009B).
    await database.query(
      `INSERT INTO cpq.alert_outbox (site, run_id, user_id, company_login, login, rule, subject, detected_at, idempotency_key)
       SELECT 'default', max(id), 1, $1, $1, 'admin_flag', 'isUserAdminPermEnabled', now(), 'terminal-escapes' FROM cpq.sync_runs`,
      [EVIL],
    );
    for (const args of [
      ['status', '--json'],
      ['check', '--json'],
      ['alerts', 'list', '--json'],
    ]) {
      const { stdout } = await cli(args, env);
      expect(stdout, args.join(' ')).not.toMatch(CONTROL);
      // The value is CPQ's name as sent, \u009b included: only its writing changed.
      expect(JSON.stringify(JSON.parse(stdout)), args.join(' ')).toContain('\u009b');
    }
    const [alert] = JSON.parse((await cli(['alerts', 'list', '--json'], env)).stdout) as { login: string }[];
    expect(alert!.login).toBe(EVIL);
  });

  it('/metrics writes a company\'s control characters as \\xNN (review GS): prom-client escapes only \\, " and line breaks', async () => {
    const metrics = new WorkerMetrics({
      sites: ['default'],
      processMetrics: false,
      companyCounts: async () => ({ counts: [{ site: 'default', company: EVIL, cpq: 3, database: 2 }], companiesRead: [{ site: 'default', companies: 1 }] }),
    });
    const text = await metrics.text();
    expect(text).not.toMatch(CONTROL);
    // The label's text is \x1b… (the exposition format writes its backslash as \\).
    expect(text).toContain(
      `cpq_sync_company_users{site="default",company="evil\\\\x1b]0;PWNED-TITLE\\\\x07\\\\x1b[31mRED\\\\x1b[0m\\\\x1b[2K\\\\x9b${REORDERING_SHOWN.replaceAll('\\', '\\\\')}",source="cpq"} 3`,
    );
  });

  it('/metrics keeps a company named with a backslash apart from one holding the control character its name spells (a\\x01, a\x01)', async () => {
    const metrics = new WorkerMetrics({
      sites: ['default'],
      processMetrics: false,
      companyCounts: async () => ({
        counts: [
          { site: 'default', company: 'a\x01', cpq: 1, database: 1 },
          { site: 'default', company: 'a\\x01', cpq: 2, database: 2 },
        ],
        companiesRead: [{ site: 'default', companies: 2 }],
      }),
    });
    const series = (await metrics.text()).split('\n').filter((line) => line.startsWith('cpq_sync_company_users{') && line.includes('source="cpq"'));
    // The exposition format doubles each backslash of a label's value once more.
    expect(series.sort()).toEqual(
      [
        'cpq_sync_company_users{site="default",company="a\\\\\\\\x01",source="cpq"} 2',
        'cpq_sync_company_users{site="default",company="a\\\\x01",source="cpq"} 1',
      ].sort(),
    );
  });

  it('verify --file: a manifest (the untrusted file it checks) cannot write escape sequences to the terminal', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'cpq-verify-'));
    try {
      const file = join(folder, 'export.csv');
      writeFileSync(file, 'a,b\n');
      writeFileSync(
        `${file}.manifest.json`,
        JSON.stringify({ manifest: 'cpq-sync export manifest v1', file: `export.csv${ESCAPES}`, bytes: 4, sha256: `00${ESCAPES}`, rows: 1 }),
      );
      const verify = await cli(['verify', '--file', file], { LOG_LEVEL: 'warn' });
      expect(verify.code).toBe(1);
      expect(verify.stdout).toContain('DIFFERS: the manifest describes export.csv\\x1b]0;PWNED-TITLE\\x07');
      expect(verify.stdout).not.toMatch(CONTROL);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('verify --chain', () => {
  it("prints a break's site as text: rows of no run may name any site, written by the forger it is there to catch (review HB)", () => {
    const report = { sites: [{ site: 'default', runs: 1, head: 'a'.repeat(64) }], breaks: [{ site: EVIL, runId: '7', problem: 'rows name run 7' }] };
    const text = formatChain(report);
    expect(text).not.toMatch(CONTROL);
    expect(text).toContain(`site evil\\x1b]0;PWNED-TITLE\\x07\\x1b[31mRED\\x1b[0m\\x1b[2K\\x9b${REORDERING_SHOWN}: BROKEN at run 7: rows name run 7`);
  });
});

describe('pretty log lines (LOG_FORMAT=pretty, or a terminal)', () => {
  it("write DEL and the C1 controls of a line's fields (errors too) as \\xNN; JSON log lines keep every value as it is", async () => {
    const lines = async (format: 'pretty' | 'json') => {
      const out = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      createLogger({ level: 'info', format, destination: out }).warn(
        { warnings: [`company ${EVIL}`], company: EVIL, err: new Error(`refused ${EVIL}`) },
        'run finished with warnings, one of company %s',
        `${EVIL}\n[00:00:00] INFO: FORGED`,
      );
      await new Promise((resolve) => setImmediate(resolve));
      return Buffer.concat(chunks).toString('utf8');
    };
    const pretty = await lines('pretty');
    expect(pretty).toContain('run finished with warnings, one of company evil\\x1b]0;PWNED-TITLE\\x07');
    // A line break in CPQ's text forges no line of the log (review HB).
    expect(pretty).toContain('\\x0a[00:00:00] INFO: FORGED');
    expect(pretty).not.toMatch(/\n\[00:00:00\]/);
    expect(pretty).toContain('\\x9b');
    expect(pretty).toContain(REORDERING_SHOWN);
    expect(pretty).not.toMatch(/[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
    const json = await lines('json');
    expect(pretty).toContain('refused evil');
    const parsed = JSON.parse(json) as { company: string; err: { message: string } };
    expect(parsed.company).toBe(EVIL);
    expect(parsed.err.message).toBe(`refused ${EVIL}`);
  });
});

import { PassThrough } from 'node:stream';
import { describe, expect, it as plainIt } from 'vitest';
import { ProgressDisplay, formatDuration, formatSummary, streamLine } from '../src/progress/index.js';
import type { StreamReport } from '../src/db/schema.js';
import { cli, cliLine, inPty, type LogLine } from './helpers/cli-process.js';
import { it, type Harness } from './helpers/harness.js';

// eslint-disable-next-line no-control-regex -- terminal escape sequences start with ESC
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

/** `cpq-sync run` in a pseudo-terminal (inPty). */
const runInPty = (env: Record<string, string>, args: string[] = []) => inPty(cliLine(['run', ...args]), env);

const envOf = (h: Harness, env: Record<string, string> = {}) => ({
  CPQ_BASE_URL: h.sim.baseUrl,
  DATABASE_URL: h.t.url,
  CPQ_COMPANIES: '_host,partner1',
  CPQ_PAGE_SIZE: '7',
  ...env,
});

const report = (received: number, totalResults: number | null): StreamReport => ({
  stream: 'companies/_host',
  mode: 'full',
  since: null,
  pages: 1,
  received,
  totalResults,
  shortRead: false,
  keyRanges: null,
});

describe('the progress display, line by line', () => {
  plainIt('a stream line: a bar, received of totalResults, users per second and time left; no bar without a total', () => {
    const started = 1_000_000;
    expect(streamLine(report(250, 1000), started, started + 5000, 17)).toBe(
      `companies/_host    [${'█'.repeat(6)}${'░'.repeat(18)}]  250 of 1,000  50 users/s  15s left`,
    );
    expect(streamLine(report(1000, 1000), started, started + 10_000, 15)).toBe(`companies/_host  [${'█'.repeat(24)}]  1,000 of 1,000  100 users/s  done`);
    expect(streamLine(report(3000, null), started, started + 2000, 15)).toBe('companies/_host  3,000 users  1,500 users/s');
    expect([formatDuration(42), formatDuration(185), formatDuration(3720)]).toEqual(['42s', '3m 05s', '1h 02m']);
  });

  plainIt('the summary: a row per company with what the run did, and the totals', () => {
    const streams = [
      report(5, 5),
      { ...report(3, 3), stream: 'companies/partner1', mode: 'incremental' as const },
      { ...report(2, 2), stream: 'integrationUsers' },
    ];
    const table = formatSummary(
      { streams, inserted: 4, updated: 1, deleted: 1, restored: 0, unchanged: 3, seconds: 2.26 },
      [
        { company: '_host', inserted: 4, updated: 0, deleted: 1, restored: 0, unchanged: 1 },
        { company: 'partner1', inserted: 0, updated: 1, deleted: 0, restored: 0, unchanged: 2 },
      ],
      new Map([['companies/_host', 1.04]]),
    );
    expect(table).toBe(
      [
        'company   mode         read  inserted  updated  deleted  restored  unchanged  seconds',
        '_host     full            5         4        0        1         0          1      1.0',
        'partner1  incremental     3         0        1        0         0          2',
        'total                    10         4        1        1         0          3      2.3',
        '',
      ].join('\n'),
    );
  });
});

describe('the display of several sites', () => {
  plainIt("tells sites' streams of the same name apart, by line and in the seconds of each site's summary", () => {
    const out = Object.assign(new PassThrough(), { isTTY: true, columns: 200 });
    let drawn = '';
    out.on('data', (d: Buffer) => (drawn += d.toString()));
    const display = new ProgressDisplay(out);
    const started = Date.now();
    display.forSite('eu').update(report(3, 6), started);
    display.forSite('us').update(report(6, 6), started);
    display.forSite('eu').update(report(6, 6), started);
    display.stop();
    const screen = drawn.replace(ANSI, '');
    expect(screen).toContain(`eu: companies/_host  [${'█'.repeat(24)}]  6 of 6`);
    expect(screen).toContain(`us: companies/_host  [${'█'.repeat(24)}]  6 of 6`);
    expect(display.sites()).toEqual(new Set(['eu', 'us']));
    expect([...display.streamSeconds('eu').keys()]).toEqual(['companies/_host']);
    expect([...display.streamSeconds('us').keys()]).toEqual(['companies/_host']);
  });
});

describe('the display of many streams', () => {
  plainIt("draws a frame with work in proportion to the streams shown, not to their square (each line worked out every stream's label)", () => {
    const out = Object.assign(new PassThrough(), { isTTY: true, columns: 200 });
    let drawn = '';
    out.on('data', (d: Buffer) => (drawn += d.toString()));
    const display = new ProgressDisplay(out);
    // Every read of a stream's report is counted: the work a frame does on the streams.
    let reads = 0;
    const counted = (r: StreamReport): StreamReport =>
      new Proxy(r, {
        get: (target, key, receiver) => {
          reads++;
          return Reflect.get(target, key, receiver) as unknown;
        },
      });
    const n = 300;
    const started = Date.now();
    for (let i = 0; i < n; i++) display.forSite('eu').update(counted({ ...report(i, n), stream: `companies/c${i}` }), started);
    // A second site, with the longest name: every line is labelled by its site and padded to it.
    display.forSite('us').update(counted({ ...report(1, 2), stream: 'companies/longest-name' }), started);
    reads = 0;
    display.stop(); // draws the last frame of every line
    // A few reads a line (received, totalResults); before, each line read all 301 streams' names.
    expect(reads / (n + 1), `${reads} reads`).toBeLessThan(20);
    const screen = drawn.replace(ANSI, '');
    const width = 'us: companies/longest-name'.length;
    expect(screen).toContain(`${'eu: companies/c7'.padEnd(width)}  [`);
    expect(screen).toContain(`${'eu: companies/c299'.padEnd(width)}  [`);
    expect(screen).toContain(`us: companies/longest-name  [${'█'.repeat(12)}`);
  });
});

describe('cpq-sync run in a terminal', () => {
  it('draws one line per stream in place, moves page lines to debug, and ends with a table per company', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 30, integrationUsers: 0 });
    const first = await runInPty(envOf(h));
    expect(first.code, first.output).toBe(0);
    const screen = first.output.replace(ANSI, '');
    expect(screen).toContain(`companies/_host     [${'█'.repeat(24)}]  30 of 30`);
    expect(screen).toContain(`companies/partner1  [${'█'.repeat(24)}]  30 of 30`);
    expect(screen).toMatch(/30 of 30 +\d[\d,]* users\/s +done/);
    // Redrawn in place: the cursor goes back up over the lines (cli-progress), instead of a line per page.
    expect(first.output).toContain('\x1b[1A');
    expect(screen).not.toContain('page read');
    expect(screen).not.toContain('{"level"');
    expect(screen).toMatch(/^company +mode +read +inserted +updated +deleted +restored +unchanged +seconds\r?$/m);
    expect(screen).toMatch(/^_host +full +30 +30 +0 +0 +0 +0 +\d+\.\d\r?$/m);
    expect(screen).toMatch(/^partner1 +full +30 +30 +0 +0 +0 +0 +\d+\.\d\r?$/m);
    expect(screen).toMatch(/^total +60 +60 +0 +0 +0 +0 +\d+\.\d\r?$/m);

    // An incremental run after one edit and one deletion (counted by the next full read): the change log per company.
    const [edited] = h.sim.users('partner1').map((u) => u.login as string);
    h.sim.updateUser('partner1', edited!, { lastName: 'Renamed' });
    const second = await runInPty(envOf(h));
    expect(second.code, second.output).toBe(0);
    const table = second.output.replace(ANSI, '');
    expect(table).toMatch(/^partner1 +incremental +\d+ +0 +1 +0 +0 +\d+ +\d+\.\d\r?$/m);
    const [run] = await h.t.query<{ users_updated: number; users_unchanged: number }>(
      `SELECT users_updated, users_unchanged FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1`,
    );
    const total = /^total +\d+ +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) /m.exec(table);
    expect(total?.slice(1).map(Number)).toEqual([0, run!.users_updated, 0, 0, run!.users_unchanged]);

    // A full read after a deletion: the company's row says what it deleted.
    h.sim.deleteUser('partner1', edited!);
    const third = await runInPty(envOf(h), ['--full']);
    expect(third.code, third.output).toBe(0);
    expect(third.output.replace(ANSI, '')).toMatch(/^partner1 +full +29 +0 +0 +1 +0 +29 +\d+\.\d\r?$/m);
  });

  it('LOG_FORMAT=json in a terminal, and any run without one, log the JSON lines as always', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 1, usersPerCompany: 20, integrationUsers: 0 });
    const other = await startHarness({ partnerCompanies: 1, usersPerCompany: 20, integrationUsers: 0 });
    const pty = await runInPty(envOf(h, { LOG_FORMAT: 'json' }));
    expect(pty.code, pty.output).toBe(0);
    expect(pty.output).not.toMatch(ANSI);
    const ptyLines = pty.output
      .split(/\r?\n/)
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as LogLine);
    const piped = await cli(['run'], envOf(other, { LOG_FORMAT: 'auto' }));
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stdout).not.toMatch(ANSI);
    const pipedLines = piped.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as LogLine);
    // The same entries with the same fields, page lines at info included: what scripts read is unchanged.
    const shape = (lines: LogLine[]) => lines.map((l) => `${String(l.level)} ${String(l.msg)} ${Object.keys(l).sort().join(',')}`).sort();
    expect(shape(ptyLines)).toEqual(shape(pipedLines));
    expect(pipedLines.filter((l) => l.msg === 'page read' && l.level === 30)).toHaveLength(2 * 3); // 20 users a company, pages of 7
  });
});

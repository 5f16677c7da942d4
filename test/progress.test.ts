import { PassThrough } from 'node:stream';
import { describe, expect, it as plainIt } from 'vitest';
import { ProgressDisplay, formatDuration, formatSummary, streamLine } from '../src/progress/index.js';
import { MAX_LINES } from '../src/progress/display.js';
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

/**
 * The screen a terminal shows after `output`: its rows as the cursor moves and writes (the
 * sequences cli-progress and pino-pretty write), unbounded downwards, trailing blank rows dropped.
 */
function screenOf(output: string): string[] {
  const rows: string[] = [''];
  let row = 0;
  let col = 0;
  const put = (text: string) => {
    const line = rows[row]!.padEnd(col);
    rows[row] = line.slice(0, col) + text + line.slice(col + text.length);
    col += text.length;
  };
  // eslint-disable-next-line no-control-regex -- terminal escape sequences start with ESC
  for (const [, n, op, text] of output.matchAll(/\x1b\[([0-9;?]*)([A-Za-z])|([^\x1b]+)/g)) {
    if (text !== undefined) {
      for (const [i, part] of text.split('\n').entries()) {
        if (i > 0) [row, col] = [row + 1, 0];
        rows[row] ??= '';
        for (const [j, piece] of part.split('\r').entries()) {
          if (j > 0) col = 0;
          put(piece);
        }
      }
    } else if (op === 'A') row = Math.max(0, row - Number(n || 1));
    else if (op === 'G') col = Number(n || 1) - 1;
    else if (op === 'K') rows[row] = n === '2' ? '' : rows[row]!.slice(0, col);
    else if (op === 'J') rows.splice(row + 1, rows.length, rows[row]!.slice(0, col));
  }
  while (rows.length > 0 && rows.at(-1)!.trim() === '') rows.pop();
  return rows.map((r) => r.trimEnd());
}

/** A terminal of `rows` (or one that tells no height), and the screen it shows. */
function terminal(rows?: number) {
  const out = Object.assign(new PassThrough(), { isTTY: true, columns: 200 }, rows === undefined ? {} : { rows });
  let drawn = '';
  out.on('data', (d: Buffer) => (drawn += d.toString()));
  return { out, screen: () => screenOf(drawn) };
}

describe('the display of many streams', () => {
  plainIt("draws a frame with work in proportion to the lines shown, not to the streams (each line worked out every stream's label)", () => {
    const { out, screen } = terminal();
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
    // A site with the longest name first: every line is labelled by its site and padded to it.
    display.forSite('us').update(counted({ ...report(1, 2), stream: 'companies/longest-name' }), started);
    for (let i = 0; i < n; i++) display.forSite('eu').update(counted({ ...report(i, n), stream: `companies/c${i}` }), started);
    reads = 0;
    display.stop(); // draws the last frame
    // A few reads a line drawn (received, totalResults); before, each of the 301 streams' lines was worked out.
    expect(reads, `${reads} reads`).toBeLessThan(3 * MAX_LINES);
    const width = 'us: companies/longest-name'.length;
    // No terminal height told: MAX_LINES lines, the streams first begun and how many more read.
    expect(screen().map((l) => l.replace(/ {2}\[.*/, ''))).toEqual([
      'us: companies/longest-name',
      ...Array.from({ length: MAX_LINES - 2 }, (_, i) => `eu: companies/c${i}`.padEnd(width)),
      `+${n - (MAX_LINES - 2)} more in progress`,
    ]);
  });

  plainIt('within the rows of the terminal: the streams that ended folded into one line, those reading (or failed) a line each, and how many more', () => {
    const { out, screen } = terminal(12);
    const display = new ProgressDisplay(out);
    const started = Date.now() - 10_000;
    const stream = (i: number) => ({ ...report(10, 10), stream: `companies/c${i}` });
    // 800 companies and the integration feed; all but 10 companies ended.
    display.update({ ...report(5, 5), stream: 'integrationUsers' }, started);
    display.ended({ ...report(5, 5), stream: 'integrationUsers' });
    for (let i = 0; i < 800; i++) {
      display.update(i < 10 ? { ...report(i, 10), stream: `companies/c${i}` } : stream(i), started);
      if (i >= 10) display.ended(stream(i));
    }
    display.stop();
    const [summary, ...rest] = screen();
    // 12 rows: 8 lines, the others left to the log lines and the prompt.
    expect(summary).toBe('791 streams done, 7,905 users');
    expect(rest.map((l) => l.replace(/\s+\[.*/, ''))).toEqual([
      'companies/c0',
      'companies/c1',
      'companies/c2',
      'companies/c3',
      'companies/c4',
      'companies/c5',
      '+4 more in progress',
    ]);
    expect(rest[1]).toMatch(/^companies\/c1 +\[█+░+\] {2}1 of 10 {2}/);
  });

  plainIt('a terminal made smaller while streams read: the lines fit it again at once', () => {
    const { out, screen } = terminal(40);
    const display = new ProgressDisplay(out);
    const started = Date.now();
    for (let i = 0; i < 30; i++) display.update({ ...report(i, 30), stream: `companies/c${i}` }, started);
    out.rows = 8;
    out.emit('resize');
    // Pages, no stream begun or ended: before, the display kept its 20 lines in an 8-row window.
    for (let i = 0; i < 30; i++) display.update({ ...report(i + 1, 30), stream: `companies/c${i}` }, started);
    display.stop();
    const shown = screen();
    expect(shown).toHaveLength(4);
    expect(shown.at(-1)).toBe('+27 more in progress');
    expect(out.listenerCount('resize')).toBe(0);
  });

  plainIt('a few streams keep a line each, those that ended too', () => {
    const { out, screen } = terminal(12);
    const display = new ProgressDisplay(out);
    const started = Date.now();
    for (let i = 0; i < 8; i++) display.update({ ...report(i, 7), stream: `companies/c${i}` }, started);
    display.ended({ ...report(7, 7), stream: 'companies/c7' });
    display.stop();
    expect(screen().map((l) => l.replace(/\s+\[.*/, ''))).toEqual(Array.from({ length: 8 }, (_, i) => `companies/c${i}`));
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

  it('a run of more companies than the terminal has rows for stays within its rows, the companies read folded into one line', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 16, usersPerCompany: 5, integrationUsers: 0 });
    const companies = ['_host', ...Array.from({ length: 16 }, (_, i) => `partner${i + 1}`)];
    // A pseudo-terminal of 12 rows: 8 lines at most.
    const run = await inPty(`stty rows 12 cols 200 && ${cliLine(['run'])}`, envOf(h, { CPQ_COMPANIES: companies.join(',') }));
    expect(run.code, run.output).toBe(0);
    // How far the cursor goes back up to redraw: the height of the display (17 lines before).
    // eslint-disable-next-line no-control-regex -- terminal escape sequences start with ESC
    const ups = [...run.output.matchAll(/\x1b\[(\d+)A/g)].map((m) => Number(m[1]));
    expect(ups.length).toBeGreaterThan(0);
    expect(Math.max(...ups)).toBeLessThanOrEqual(8);
    const screen = screenOf(run.output);
    expect(screen).toContain('17 streams done, 85 users'); // 17 companies (a site without integration users has no such feed)
    expect(screen.filter((l) => l.startsWith('companies/'))).toEqual([]);
    expect(screen.join('\n')).toMatch(/^total +85 +85 +0 +0 +0 +0 +\d+\.\d$/m);
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

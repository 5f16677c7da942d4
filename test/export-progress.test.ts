import { PassThrough } from 'node:stream';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it as plainIt } from 'vitest';
import { ExportDisplay, exportLine, exportSummary } from '../src/progress/index.js';
import { cli, cliLine, inPty, quoted } from './helpers/cli-process.js';
import { it } from './helpers/fixtures.js';
import type { Harness } from './helpers/harness.js';

// eslint-disable-next-line no-control-regex -- terminal escape sequences start with ESC
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

const FULL_BAR = `\\[${'█'.repeat(24)}\\]`;
const escaped = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Two runs: 40 users inserted, then one updated; 41 changes, watermark 2. */
async function twoRuns(h: Harness): Promise<void> {
  await h.sync();
  const [edited] = h.sim.users('_host').map((u) => u.login as string);
  h.sim.updateUser('_host', edited!, { lastName: 'Renamed' });
  await h.sync();
}

describe('the line of an export, and its summary', () => {
  plainIt('with a total: bar, rows of total, rate, time left and elapsed; without one: rows, rate and elapsed', () => {
    const started = 1_000_000;
    expect(exportLine('out.jsonl', 500, 2000, started, started + 5000)).toBe(
      `out.jsonl  [${'█'.repeat(6)}${'░'.repeat(18)}]  500 of 2,000  100 rows/s  15s left  5s elapsed`,
    );
    expect(exportLine('out.jsonl', 2000, 2000, started, started + 65_000)).toBe(
      `out.jsonl  [${'█'.repeat(24)}]  2,000 of 2,000  31 rows/s  done  1m 05s elapsed`,
    );
    expect(exportLine('users.csv', 3000, null, started, started + 2000)).toBe('users.csv  3,000 rows  1,500 rows/s  2s elapsed');
    // A file's name as typed, control characters and all, cannot act on the terminal.
    expect(exportLine('a\x1b[2Jb.csv', 0, null, started, started)).toBe('a\\x1b[2Jb.csv  0 rows  0 rows/s  0s elapsed');
    expect(exportSummary('users.csv', 12_345, 4_096_000, 3.21)).toBe('wrote 12,345 rows (4,096,000 bytes) to users.csv in 3.2 s\n');
  });
});

describe('the end of an export', () => {
  plainIt('a file gone from under the display once in place (moved by another process) fails nothing: the summary leaves out its size', async () => {
    const out = Object.assign(new PassThrough(), { isTTY: true, columns: 200 });
    let drawn = '';
    out.on('data', (d: Buffer) => (drawn += d.toString()));
    const dir = await mkdtemp(join(tmpdir(), 'cpq-export-progress-'));
    try {
      const display = new ExportDisplay(out, join(dir, 'moved.csv'));
      display.written(2000);
      await display.finish();
      expect(drawn.replace(ANSI, '')).toMatch(new RegExp(`wrote 2,000 rows to ${escaped(join(dir, 'moved.csv'))} in \\d+\\.\\d s\n$`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('changes and snapshot --out in a terminal', () => {
  it('draw one line in place with rows, rate and (changes --after) a bar of the total, then a summary; the file is the one written without it', async ({
    startHarness,
  }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 40, integrationUsers: 0 });
    await twoRuns(h);
    const dir = await mkdtemp(join(tmpdir(), 'cpq-export-progress-'));
    try {
      const env = { DATABASE_URL: h.t.url };
      const shown = join(dir, 'shown.jsonl');
      const first = await inPty(cliLine(['changes', '--after', '0', '--out', shown]), env);
      expect(first.code, first.output).toBe(0);
      const screen = first.output.replace(ANSI, '');
      // The total (41 changes: 40 inserts, 1 update) from the runs' counters, before any row is read.
      expect(screen).toMatch(new RegExp(`${escaped(shown)}  ${FULL_BAR}  41 of 41  [\\d,]+ rows/s  done  \\d+s elapsed`));
      // Redrawn in place: back to the first column over the same line (cli-progress), then cleared for the summary.
      expect(first.output).toContain(`\x1b[1G${shown}  [`);
      const bytes = (await stat(shown)).size;
      expect(screen).toMatch(
        new RegExp(`\\r?\\n?wrote 41 rows \\(${bytes.toLocaleString('en-US')} bytes\\) to ${escaped(shown)} in \\d+\\.\\d s\\r?\\nwatermark: 2\\r?\\n$`),
      );
      expect((await readFile(shown, 'utf8')).trim().split('\n')).toHaveLength(41);

      // Without a terminal, the same bytes; and only the watermark on stderr.
      const plain = join(dir, 'plain.jsonl');
      const piped = await cli(['changes', '--after', '0', '--out', plain], { ...env, LOG_FORMAT: 'auto' });
      expect({ code: piped.code, stdout: piped.stdout, stderr: piped.stderr }).toEqual({ code: 0, stdout: '', stderr: 'watermark: 2\n' });
      expect(await readFile(shown)).toEqual(await readFile(plain));

      // A later poll of one site: its total is that run's changes only.
      const later = await inPty(cliLine(['changes', '--after', '1', '--site', 'default', '--format', 'csv', '--out', join(dir, 'later.csv')]), env);
      expect(later.code, later.output).toBe(0);
      expect(later.output.replace(ANSI, '')).toMatch(new RegExp(`later\\.csv  ${FULL_BAR}  1 of 1  [\\d,]+ rows/s  done`));

      // A failed export: the line is cleared for its one-line error (its file is never put in place).
      const failed = await inPty(cliLine(['changes', '--after', '0', '--out', join(dir, 'no-such-folder', 'x.jsonl')]), env);
      expect(failed.code).not.toBe(0);
      // eslint-disable-next-line no-control-regex -- the clear is an escape sequence (ESC [ 0 J)
      expect(failed.output).toMatch(/\x1b\[0Jcpq-sync: cannot write [^\n]*no-such-folder[^\n]*\r?\n$/);

      // A snapshot: no total (only a count as long as its read would give one), the rows and their rate.
      const asOf = new Date().toISOString();
      const snapshot = join(dir, 'snapshot.csv');
      const snap = await inPty(cliLine(['snapshot', '--as-of', asOf, '--out', snapshot]), env);
      expect(snap.code, snap.output).toBe(0);
      const snapScreen = snap.output.replace(ANSI, '');
      expect(snapScreen).toMatch(new RegExp(`${escaped(snapshot)}  40 rows  [\\d,]+ rows/s  \\d+s elapsed`));
      expect(snapScreen).toMatch(
        new RegExp(`wrote 40 rows \\(${(await stat(snapshot)).size.toLocaleString('en-US')} bytes\\) to ${escaped(snapshot)} in \\d+\\.\\d s`),
      );
      const snapshotPlain = join(dir, 'snapshot-plain.csv');
      const snapPiped = await cli(['snapshot', '--as-of', asOf, '--out', snapshotPlain], { ...env, LOG_FORMAT: 'auto' });
      expect(snapPiped.code, snapPiped.stderr).toBe(0);
      expect(snapPiped.stdout + snapPiped.stderr).not.toContain('rows/s');
      expect(await readFile(snapshot)).toEqual(await readFile(snapshotPlain));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('never on standard output (the data), with LOG_FORMAT=json, or without a terminal', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 40, integrationUsers: 0 });
    await twoRuns(h);
    const dir = await mkdtemp(join(tmpdir(), 'cpq-export-progress-'));
    try {
      const env = { DATABASE_URL: h.t.url };
      const noDisplay = (output: string) => {
        expect(output).not.toContain('rows/s');
        expect(output).not.toContain('wrote ');
        expect(output).not.toContain('\x1b[?25l'); // the cursor, hidden while a display shows
      };

      // Standard output is the terminal: the changes and the watermark only.
      const toTerminal = await inPty(cliLine(['changes', '--after', '0']), env);
      expect(toTerminal.code, toTerminal.output).toBe(0);
      noDisplay(toTerminal.output);
      expect(toTerminal.output.trim().split(/\r?\n/)).toHaveLength(42);

      // Standard output redirected, standard error still the terminal: the data is standard output's, no display.
      const redirected = join(dir, 'redirected.jsonl');
      const toFile = await inPty(cliLine(['changes', '--after', '0'], ` > ${quoted(redirected)}`), env);
      expect(toFile.code, toFile.output).toBe(0);
      noDisplay(toFile.output);
      expect(toFile.output).toMatch(/^watermark: 2\r?\n$/);
      const snapRedirected = await inPty(cliLine(['snapshot'], ` > ${quoted(join(dir, 'snapshot.csv'))}`), env);
      expect(snapRedirected.code, snapRedirected.output).toBe(0);
      noDisplay(snapRedirected.output);

      // JSON logs in a terminal: lines for machines, no display.
      const json = await inPty(cliLine(['changes', '--after', '0', '--out', join(dir, 'json.jsonl')]), { ...env, LOG_FORMAT: 'json' });
      expect(json.code, json.output).toBe(0);
      noDisplay(json.output);
      expect(json.output).not.toMatch(ANSI);
      const snapJson = await inPty(cliLine(['snapshot', '--out', join(dir, 'json.csv')]), { ...env, LOG_FORMAT: 'json' });
      expect(snapJson.code, snapJson.output).toBe(0);
      noDisplay(snapJson.output);

      // No terminal at all (CI, cron): as before.
      const piped = await cli(['snapshot', '--out', join(dir, 'piped.csv')], { ...env, LOG_FORMAT: 'auto' });
      expect(piped.code, piped.stderr).toBe(0);
      noDisplay(piped.stdout + piped.stderr);
      const pipedChanges = await cli(['changes', '--after', '0', '--out', join(dir, 'piped.jsonl')], { ...env, LOG_FORMAT: 'auto' });
      expect({ code: pipedChanges.code, stderr: pipedChanges.stderr }).toEqual({ code: 0, stderr: 'watermark: 2\n' });
      expect(await readFile(redirected)).toEqual(await readFile(join(dir, 'piped.jsonl')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

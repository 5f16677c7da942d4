import type { KeyRange, Page } from '../cpq/paging.js';
import { laterTimestamp } from '../date-time.js';
import type { StreamId } from '../cpq/streams.js';
import type { StreamReport } from '../db/schema.js';
import type { UserRow } from '../normalize/user-record.js';
import { LoginChecksum } from './login-checksum.js';

/**
 * What the streams of a run have read so far, summed as each page comes: O(1) a page, where summing
 * the streams at each look would cost O(streams) (a run of CPQ_COMPANIES=* may read ~450,000
 * companies). The run's progress (RunProgress) and the worker's gauge read it.
 */
export class ReadTotals {
  /** Pages read, and users received (records, a repeat counted twice). */
  pages = 0;
  received = 0;
  /**
   * The sum of the totalResults the streams reported, and how many streams reported one. A bigint:
   * each is at most 2^53 - 1 (countValue), their sum is not, and a double would round it.
   */
  totalResults = 0n;
  reporting = 0;
  /** Company streams started. */
  companyStreams = 0;
}

/** Told how each stream's read goes, for a display (`run` in a terminal); the run works the same without one. */
export interface ProgressSink {
  /** A stream started (no page yet) or counted a page: its report as it stands, and when it started (ms since the epoch). */
  update(report: Readonly<StreamReport>, startedAt: number): void;
  /** The stream's read ended: its last page was read and written (a stream that fails is never told so). */
  ended?(report: Readonly<StreamReport>): void;
  /** After each update: what the run's streams have read so far, all together (the worker's gauge). */
  totals?(totals: Readonly<ReadTotals>): void;
  /** The sink for one site's run, when runs of several sites share a display; without it, runs share this one. */
  forSite?(site: string): ProgressSink;
}

/** One stream's read: what the run record reports about it, and the newest dateModified it saw. */
export class StreamProgress {
  readonly report: StreamReport;
  readonly startedAt = Date.now();
  cursor: string | null = null;
  /** The logins of the records read (cpq.run_company_counts.received_checksum). */
  readonly logins = new LoginChecksum();
  /** How many different users the read returned, when counted (see `countedUsers`); else every record is taken for one. */
  private users: number | undefined;
  /** Per key range, the last login read; and whether one came that was not after it. */
  private readonly lastLogins: string[] = [];
  private unordered = false;
  /** How many records read carry no dateModified (no incremental read can return them). */
  private undated = 0;

  constructor(
    readonly id: StreamId,
    since: Date | undefined,
    private readonly sink?: ProgressSink,
    /** The run's totals, which its pages add to; its own when none is given. */
    private readonly totals = new ReadTotals(),
  ) {
    this.report = {
      stream: id.name,
      mode: since ? 'incremental' : 'full',
      since: since?.toISOString() ?? null,
      pages: 0,
      received: 0,
      totalResults: null,
      shortRead: false,
      keyRanges: null,
    };
    if (id.kind === 'company') totals.companyStreams++;
    sink?.update(this.report, this.startedAt);
  }

  /** Where an incremental read starts (the cursor less SYNC_LOOKBACK); undefined for a full read. */
  get since(): Date | undefined {
    return this.report.since ? new Date(this.report.since) : undefined;
  }

  page(page: Page) {
    const totals = this.totals;
    this.report.pages++;
    totals.pages++;
    this.report.received += page.items.length;
    totals.received += page.items.length;
    // The first page of a JSON read says it; a zip read's last page, once the archive was read.
    if (page.totalResults !== undefined) {
      const before = this.report.totalResults;
      if (before === null) totals.reporting++;
      totals.totalResults += BigInt(page.totalResults) - BigInt(before ?? 0);
      this.report.totalResults = page.totalResults;
    }
    // The first page is read alone, before the split: the ranges show from the pages after it.
    if (page.range && page.range.count > 1) this.report.keyRanges = page.range.count;
    this.sink?.update(this.report, this.startedAt);
  }

  /** The read ended: its last page was read and written. */
  ended() {
    this.sink?.ended?.(this.report);
  }

  saw(rows: UserRow[]) {
    for (const row of rows) {
      if (!row.dateModified) this.undated++;
      else if (this.cursor === null || laterTimestamp(row.dateModified, this.cursor)) this.cursor = row.dateModified;
      this.logins.add(row.login);
    }
  }

  /**
   * A record's login, in the order read, with the key range its page came from. A keyset read
   * returns each range's logins in increasing order and inside its bounds, so a login sent twice
   * breaks the order or leaves the range: a read whose logins all came so holds no repeat, and
   * needs no count of its users.
   */
  read(login: string, range?: KeyRange) {
    const index = range?.index ?? 0;
    const last = this.lastLogins[index];
    if ((last !== undefined && !(login > last)) || (range?.from !== undefined && login < range.from) || (range?.to !== undefined && login >= range.to)) {
      this.unordered = true;
    }
    this.lastLogins[index] = login;
  }

  /** Whether the read may hold a user twice (see `read`): its users must be counted (`countedUsers`). */
  get mayRepeat(): boolean {
    return this.unordered;
  }

  /**
   * How many different users the read returned (counted in the database once it is read): a user
   * CPQ sent twice counts once, so that a repeat cannot hide a user left out.
   */
  countedUsers(users: number) {
    this.users = users;
  }

  /** How many users the read returned: its records, or the different users among them once counted. */
  get usersRead(): number {
    return Math.min(this.report.received, this.users ?? Infinity);
  }

  /** Fewer users were read than CPQ reported (totalResults). */
  get short(): boolean {
    const total = this.report.totalResults;
    return total !== null && this.usersRead < total;
  }

  /** Ends the read: marks a short read in the report and returns the warnings it deserves. */
  finish(): string[] {
    const warnings: string[] = [];
    if (this.short) {
      this.report.shortRead = true;
      const repeats =
        this.users !== undefined && this.users < this.report.received ? ` (${this.report.received} records, for ${this.users} different users)` : '';
      warnings.push(
        `${this.id.name}: read ${this.usersRead} of ${this.report.totalResults} users that CPQ reported (totalResults)${repeats}; the read was short`,
      );
    }
    // Incremental reads ask for dateModified at or after the cursor: a record without one is seen by full reads only.
    if (this.undated > 0 && this.report.mode === 'full') {
      warnings.push(
        `${this.id.name}: ${this.undated} of the records read carry no dateModified: incremental runs cannot return their edits, only full runs do (SYNC_FULL_EVERY, run --full)`,
      );
    }
    return warnings;
  }
}

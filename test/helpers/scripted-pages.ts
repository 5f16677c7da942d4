import { parseExactJson, stringifyExactJson } from '../../src/exact-json.js';
import type { CpqSimulator, RequestRecord } from '../../src/simulator/index.js';
import { gate } from './cli-process.js';

/** Marks the test's own requests for the real response, so the script does not see them. */
const NESTED = '_scriptedPagesNested';

/** True for the requests scriptRequests made itself to learn the real response. */
export function isNestedRequest(req: RequestRecord): boolean {
  return req.query[NESTED] !== undefined;
}

export interface ScriptedRequest extends RequestRecord {
  index: number;
  /** 0-based count of the user-page requests (paths ending in /users) scripted so far, this one excluded. */
  page: number;
  /** The response the simulator would give to this very request, as text (fetched on the side). */
  real(): Promise<string>;
  /** The same, with its status; with `query`, the answer to the same path asked with that query instead. */
  realAnswer(query?: Record<string, string>): Promise<{ status: number; body: string }>;
  /** Answers this request with the given body instead (200 JSON unless told otherwise). */
  reply(body: string, options?: { status?: number; headers?: Record<string, string> }): void;
}

/**
 * Per-request scripted behaviour from the test side: `script` sees each request before the
 * simulator answers it and may replace the answer, typically with the real page edited (hasMore
 * lying, rows duplicated, the body cut short). Uses only the simulator's onRequest and addFault.
 */
export function scriptRequests(sim: CpqSimulator, script: (req: ScriptedRequest) => void | Promise<void>): void {
  let page = 0;
  sim.onRequest = async (req) => {
    if (req.query[NESTED] !== undefined) return;
    const scripted: ScriptedRequest = {
      ...req,
      page: req.path.endsWith('/users') ? page++ : -1,
      real: async () => (await scripted.realAnswer()).body,
      realAnswer: async (query = req.query) => {
        const url = new URL(sim.baseUrl + req.path);
        for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
        url.searchParams.set(NESTED, '1');
        const response = await fetch(url);
        return { status: response.status, body: await response.text() };
      },
      reply: (body, options = {}) =>
        sim.addFault({
          match: { method: req.method, path: req.path, query: req.query },
          times: 1,
          status: options.status ?? 200,
          ...(options.headers ? { headers: options.headers } : {}),
          body,
        }),
    };
    await script(scripted);
  };
}

/** A collection page parsed exactly (int64s kept), edited, and written back. */
export function editPage(text: string, edit: (page: { items: Record<string, unknown>[]; hasMore: boolean; [k: string]: unknown }) => void): string {
  const page = parseExactJson(text) as { items: Record<string, unknown>[]; hasMore: boolean };
  edit(page);
  return stringifyExactJson(page);
}

/**
 * Serves the first page of user pages as it is, and the second as `edit` makes it, given the
 * first page's users (the shape every "user read twice" script shares). Only in the first read,
 * or in each read `startRead()` announces: the pages are counted from there.
 */
function editSecondPage(
  sim: CpqSimulator,
  edit: (page: { items: Record<string, unknown>[]; hasMore: boolean }, firstPage: Record<string, unknown>[]) => void,
): { firstPage: Record<string, unknown>[]; startRead: () => void } {
  const firstPage: Record<string, unknown>[] = [];
  let page = 0;
  scriptRequests(sim, async (req) => {
    // Pages of users only (a zip export is asked for on the same path, without a limit).
    if (!req.path.endsWith('/users') || req.query.limit === undefined) return;
    const at = page++;
    if (at === 0) {
      const text = await req.real();
      firstPage.splice(0, firstPage.length);
      editPage(text, (p) => firstPage.push(...p.items));
      req.reply(text);
    }
    if (at === 1) req.reply(editPage(await req.real(), (p) => edit(p, firstPage)));
  });
  return { firstPage, startRead: () => void (page = 0) };
}

/**
 * In each read `startRead()` announces, the second page of user pages starts with the user
 * `again` picks from the first page's (as it returns it; undefined leaves the page as it is),
 * keeping its size as repeatOnSecondPage does: a user read twice in every run.
 */
export function repeatInEveryRead(
  sim: CpqSimulator,
  again: (firstPage: Record<string, unknown>[]) => Record<string, unknown> | undefined,
): { startRead: () => void } {
  return editSecondPage(sim, (p, firstPage) => {
    const user = again(firstPage);
    // A last page already full (as many as the first) has no room: CPQ never sends more than asked.
    if (user === undefined || (!p.hasMore && p.items.length >= firstPage.length)) return;
    p.items.unshift(user);
    if (p.hasMore) p.items.splice(-1);
  });
}

/**
 * The second page of user pages starts with the last `count` users of the first page again,
 * each as `edit` makes it (unchanged by default): a user read twice in one run. Returns the
 * first page's users, filled in once it has been served. The page keeps its size, as CPQ keeps
 * the limit asked for: when more pages follow, its last `count` users are left to the next page
 * (a keyset read asks for what comes after the page's new last login).
 */
export function repeatOnSecondPage(
  sim: CpqSimulator,
  count: number,
  edit: (user: Record<string, unknown>) => Record<string, unknown> = (u) => u,
): Record<string, unknown>[] {
  return editSecondPage(sim, (p, firstPage) => {
    p.items.unshift(...firstPage.slice(-count).map(edit));
    if (p.hasMore) p.items.splice(-count);
  }).firstPage;
}

/**
 * The second page of user pages leaves out one of its users and sends the first page's last user
 * again in its place: as many records as CPQ reports, one user fewer. `dropped()` is the login left
 * out, once the page has been served.
 */
export function repeatOneDropOne(sim: CpqSimulator): { dropped: () => string } {
  let dropped = '';
  editSecondPage(sim, (p, firstPage) => {
    dropped = String(p.items[4]!.login);
    p.items.splice(4, 1);
    p.items.unshift(firstPage.at(-1)!);
  });
  return { dropped: () => dropped };
}

/**
 * Holds every CPQ request from the `after`-th one on (counting from now) until released, so a
 * run can be caught mid-way with pages already staged; `reached` resolves when one is held.
 */
export function holdRequests(sim: CpqSimulator, after: number): { reached: Promise<void>; release: () => void } {
  const hold = gate();
  const reached = gate();
  const start = sim.requests.length;
  sim.onRequest = async ({ index }) => {
    if (index - start >= after) {
      reached.open();
      await hold.promise;
    }
  };
  return { reached: reached.promise, release: hold.open };
}

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { withCpq } from '../../src/config.js';
import type { RunResult } from '../../src/sync/run-types.js';
import { runSync } from '../../src/sync/run.js';
import { rowVersions } from '../helpers/db-equals-simulator.js';
import type { Harness } from '../helpers/harness.js';
import { anyText, commandSettings, propertyTimeout, runs } from './arbitraries.js';
import {
  COMPANIES,
  INTEGRATION_PATH,
  LOOKBACK_MS,
  MoveClock,
  MoveUser,
  DeleteUser,
  PostIntegrationUser,
  RestoreUser,
  pick,
  runFailingAt,
  type Rec,
} from './history-commands.js';
import { CreateUser, POOL_GROUPS, UpdateUser, applyRun, checkRun, startCase, withFormat, type Cmd, type Model, type Real } from './run-model.js';

/*
 * Model-based test of run sequences. The simulator is the site; the model is what the database
 * must hold: for each (company, login) the record as last read, or deleted, the cursor of each
 * stream, and the state after every run. Random admin actions (create, update, delete and restore
 * users in any company; change only groups or permissions, with or without moving dateModified;
 * edit with dateModified moved backwards or removed; rename; add a login's case-only twin;
 * create and update integration users through POST and PATCH; move the clock) are interleaved
 * with full, incremental, zip and interrupted runs. After every run:
 *  - the tables equal the model (test/helpers/db-equals-simulator.ts, given the model as the site);
 *  - the run's change rows are exactly the model's diffs (insert/update/delete/restore per user),
 *    and replaying the whole change log gives the tables (expectChangeLogConsistent);
 *  - the as-of functions (users, memberships, permissions, group definitions; every row, deleted
 *    users' included) give each run's state at its effective_at and halfway to the next run, and
 *    the state of the run before it (none before the first) a microsecond before it.
 * An interrupted run changes no row.
 */

// ------------------------------------------------------------------ commands

// The model, its check of a run, CreateUser and UpdateUser: ./run-model.ts; MoveClock, RestoreUser
// and MoveUser: ./history-commands.ts.

/**
 * An edit whose dateModified goes backwards (behind the cursor, so an incremental read misses it
 * until a full one) or disappears (no incremental read can find it): the model reads by the same
 * rule, so the tables must follow it whatever the site's clock says.
 */
class BackdatedUpdate implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly jobTitle: string,
    readonly backMs: number | 'removed',
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const dateModified = this.backMs === 'removed' ? undefined : new Date(model.clock.now - this.backMs).toISOString();
    h.sim.updateUser(this.company, String(user.login), { jobTitle: this.jobTitle, dateModified });
  }
  toString = () =>
    `update user #${this.n} of ${this.company}: jobTitle ${JSON.stringify(this.jobTitle)}, dateModified ${this.backMs === 'removed' ? 'removed' : `now - ${this.backMs / 1000}s`}`;
}

/** A new user whose login differs from an existing one's only in case (CPQ compares logins exactly: two users). */
class CreateCaseTwin implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const login = String(user.login);
    const twin = login === login.toUpperCase() ? login.toLowerCase() : login.toUpperCase();
    if (twin === login || h.sim.user(this.company, twin)) return;
    h.sim.addUser(this.company, { login: twin });
  }
  toString = () => `create the case twin of user #${this.n} of ${this.company}`;
}

/** A user's login changes (the old login is gone from the site, the new one is a user never seen). */
class RenameUser implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly suffix: string,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const login = `${String(user.login)}${this.suffix}`;
    if (h.sim.user(this.company, login)) return;
    h.sim.updateUser(this.company, String(user.login), { login });
  }
  toString = () => `rename user #${this.n} of ${this.company}: login + ${JSON.stringify(this.suffix)}`;
}

class ChangeGroups implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly group: string,
    readonly add: boolean,
    readonly touch: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const login = String(user.login);
    // Adding a group the user has only reorders its items in the simulator: not a change CPQ would make.
    const has = ((user.groups as { items?: Rec[] } | undefined)?.items ?? []).some((g) => g.variableName === this.group);
    if (this.add && has) return;
    if (this.add) h.sim.addGroup(this.company, login, { variableName: this.group, ...model.groupDefs[this.group]! }, { touch: this.touch });
    else h.sim.removeGroup(this.company, login, this.group, { touch: this.touch });
  }
  toString = () =>
    `${this.add ? 'add' : 'remove'} group ${this.group} ${this.add ? 'to' : 'from'} user #${this.n} of ${this.company}${this.touch ? '' : ' (dateModified kept)'}`;
}

class ChangePermission implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly hasAccess: boolean,
    readonly touch: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (user)
      h.sim.setAccessPermission(
        this.company,
        String(user.login),
        { type: 'productFamily', variableName: 'laptops', name: 'Laptops', hasAccess: this.hasAccess },
        { touch: this.touch },
      );
  }
  toString = () => `set permission laptops=${this.hasAccess} on user #${this.n} of ${this.company}${this.touch ? '' : ' (dateModified kept)'}`;
}

class PatchIntegrationUser implements Cmd {
  constructor(
    readonly n: number,
    readonly groups: string[] | undefined,
    readonly newClient: boolean,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    const user = pick(h.sim.integrationUsers(), this.n);
    if (!user) return;
    const body: Rec = {};
    if (this.groups) body.groups = { items: this.groups.map((variableName) => ({ variableName })) };
    if (this.newClient) body.oauthClientId = `client${model.nextClient++}`;
    const response = await fetch(`${h.sim.baseUrl}${INTEGRATION_PATH}/${encodeURIComponent(String(user.partyNumber))}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
  }
  toString = () => `PATCH integration user #${this.n}: ${this.groups ? `groups ${this.groups.join(',')}` : ''}${this.newClient ? ' new OAuth client' : ''}`;
}

class Run implements Cmd {
  constructor(
    readonly full: boolean,
    readonly format: 'json' | 'zip',
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    const result = await runSync({ pool: h.t.pool, db: h.t.db, config: withFormat(h.config, this.format), log: h.log }, { full: this.full });
    const changes = applyRun(model, h.sim, this.full, this.format);
    await checkRun(model, real, result, changes);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} ${this.format}`;
}

/** A run interrupted (its signal aborted) at its `at`-th request: no row changes; a run that ends first is an ordinary run. */
class InterruptedRun implements Cmd {
  constructor(readonly at: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    const before = await rowVersions(h.t);
    const controller = new AbortController();
    let seen = 0;
    h.sim.onRequest = () => {
      if (++seen === this.at) controller.abort();
    };
    let result: RunResult | undefined;
    try {
      result = await runSync({ pool: h.t.pool, db: h.t.db, config: h.config, log: h.log }, { signal: controller.signal });
    } catch {
      result = undefined;
    } finally {
      h.sim.onRequest = undefined;
    }
    if (result && result.status === 'succeeded') {
      await checkRun(model, real, result, applyRun(model, h.sim, false, 'json'));
      return;
    }
    expect(await rowVersions(h.t), 'rows after an interrupted run').toEqual(before);
  }
  toString = () => `run interrupted at request ${this.at}`;
}

/** The run's CPQ_PAGE_SIZE and, within each page of a user collection, the site's own order of the items (a permutation). */
function shuffle(seed: number) {
  return <T>(items: T[]): T[] => {
    const out = items.slice();
    let x = seed >>> 0 || 1;
    for (let i = out.length - 1; i > 0; i--) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const j = x % (i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };
}

/** A run while the site returns each page's users in another order, with another page size (CPQ orders pages by orderby, not the items within them). */
class ShuffledRun implements Cmd {
  constructor(
    readonly full: boolean,
    readonly pageSize: number,
    readonly seed: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    h.sim.reorderPage = shuffle(this.seed);
    let result: RunResult;
    try {
      result = await runSync(
        { pool: h.t.pool, db: h.t.db, config: withCpq(h.config, { exportFormat: 'json', pageSize: this.pageSize }), log: h.log },
        { full: this.full },
      );
    } finally {
      h.sim.reorderPage = undefined;
    }
    const changes = applyRun(model, h.sim, this.full, 'json');
    await checkRun(model, real, result, changes);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} json, pages of ${this.pageSize} shuffled (seed ${this.seed})`;
}

/** One request (the `at`-th) answered 500 however often it is retried: the run fails, no row changes, the next run catches up. */
class FailingRun implements Cmd {
  constructor(
    readonly at: number,
    readonly full: boolean,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const { h } = real;
    const before = await rowVersions(h.t);
    const { result, seen } = await runFailingAt(h, this.at, this.full);
    if (result && result.status === 'succeeded' && seen < this.at) {
      await checkRun(model, real, result, applyRun(model, h.sim, this.full, 'json'));
      return;
    }
    expect(result?.status, 'a run one of whose requests always failed').not.toBe('succeeded');
    expect(await rowVersions(h.t), 'rows after a failed run').toEqual(before);
  }
  toString = () => `run ${this.full ? 'full' : 'incremental'} json failing at request ${this.at} (500)`;
}

/** A deleted user's login is given to a new user of the same company (someone else: a fresh record). */
class ReuseLogin implements Cmd {
  constructor(readonly n: number) {}
  check = (model: Readonly<Model>) => model.gone.length > 0;
  async run(model: Model, { h }: Real) {
    const i = this.n % model.gone.length;
    const { company, record } = model.gone[i]!;
    const login = String(record.login);
    if (h.sim.user(company, login)) return;
    model.gone.splice(i, 1);
    h.sim.addUser(company, { login });
  }
  toString = () => `give deleted user #${this.n}'s login to a new user`;
}

/** Content changes, dateModified does not (an incremental read cannot see it; a full one must). */
class SameDateUpdate implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly field: string,
    readonly text: string,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (user) h.sim.updateUser(this.company, String(user.login), { [this.field]: this.text }, { touch: false });
  }
  toString = () =>
    `update user #${this.n} of ${this.company}: ${this.field} ${JSON.stringify(this.text.length > 40 ? `${this.text.slice(0, 20)}…(${this.text.length})` : this.text)} (dateModified kept)`;
}

/** A permission removed (and, with `readd`, added back at once, perhaps with another name or access). */
class ChurnPermission implements Cmd {
  constructor(
    readonly company: string,
    readonly n: number,
    readonly readd: { name: string; hasAccess: boolean } | undefined,
    readonly touch: boolean,
  ) {}
  check = () => true;
  async run(_m: Model, { h }: Real) {
    const user = pick(h.sim.users(this.company), this.n);
    if (!user) return;
    const items = ((user.accessPermissions as { items?: Rec[] } | undefined)?.items ?? []).slice();
    const victim = pick(items, this.n);
    if (!victim) return;
    const rest = items.filter((p) => p !== victim);
    const login = String(user.login);
    h.sim.updateUser(this.company, login, { accessPermissions: { items: rest } }, { touch: this.touch });
    if (this.readd)
      h.sim.setAccessPermission(
        this.company,
        login,
        { type: String(victim.type), variableName: String(victim.variableName), name: this.readd.name, hasAccess: this.readd.hasAccess },
        { touch: this.touch },
      );
  }
  toString = () =>
    `remove a permission of user #${this.n} of ${this.company}${this.readd ? ` and add it back (${JSON.stringify(this.readd.name)}, ${this.readd.hasAccess})` : ''}${this.touch ? '' : ' (dateModified kept)'}`;
}

/** A group's label and type change at the site: its definition and every member's item (each member modified now, or not: `touch`). */
class RelabelGroup implements Cmd {
  constructor(
    readonly group: string,
    readonly label: string,
    readonly type: string,
    readonly touch = true,
  ) {}
  check = () => true;
  async run(model: Model, { h }: Real) {
    h.sim.relabelGroup(this.group, this.label, this.type, { touch: this.touch });
    model.groupDefs[this.group] = { label: this.label, type: this.type };
    // users deleted meanwhile come back as the site holds them now
    for (const g of model.gone) {
      const items = (g.record.groups as { items?: Rec[] } | undefined)?.items;
      if (Array.isArray(items))
        g.record = { ...g.record, groups: { items: items.map((i) => (i.variableName === this.group ? { ...i, label: this.label, type: this.type } : i)) } };
    }
  }
  toString = () => `relabel group ${this.group}: ${JSON.stringify(this.label)} / ${this.type}${this.touch ? '' : " (members' dateModified kept)"}`;
}

const company = fc.constantFrom(...COMPANIES);
const groupName = fc.constantFrom(...POOL_GROUPS, 'grpA', 'grpB');
/** Field texts: the usual few, long ones, any Unicode (astral, combining), control characters (never NUL: Postgres text holds none). */
const fieldText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('Smith', 'Jones', 'Ñúñez', '', 'Engineer', 'Ärztin') },
  { weight: 2, arbitrary: anyText },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '\u0001\u001f\u007f\u0085',
      ' lead\ttab ',
      'line\r\nbreak',
      '\u2028\u2029',
      'e\u0301 \u{1F600}\u{1F3FD}',
      '\uFEFFbom',
      'a"b\\c/',
    ),
  },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('x', 'Ω', '\u{1F600}', 'é'), fc.integer({ min: 200, max: 5000 })).map(([c, n]) => c.repeat(n)) },
);
const commands: fc.Arbitrary<Cmd>[] = [
  fc.integer({ min: 1, max: 3 * 3600 }).map((s) => new MoveClock(s * 1000)),
  fc.integer({ min: 1, max: 3 }).map(() => new MoveClock(LOOKBACK_MS / 2)),
  company.map((c) => new CreateUser(c)),
  fc.tuple(company, fc.nat(), fieldText).map(([c, n, name]) => new UpdateUser(c, n, name)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new DeleteUser(c, n)),
  fc
    .tuple(
      company,
      fc.nat(),
      fieldText,
      fc.oneof(
        fc.integer({ min: 1, max: 3 * 86_400 }).map((s) => s * 1000),
        fc.constant('removed' as const),
      ),
    )
    .map(([c, n, title, back]) => new BackdatedUpdate(c, n, title, back)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new CreateCaseTwin(c, n)),
  fc.tuple(company, fc.nat(), fc.constantFrom('-x', '.2', 'Ω', '\u{1F600}')).map(([c, n, suffix]) => new RenameUser(c, n, suffix)),
  fc.nat().map((n) => new RestoreUser(n)),
  fc.tuple(company, fc.nat(), groupName, fc.boolean(), fc.boolean()).map(([c, n, g, add, touch]) => new ChangeGroups(c, n, g, add, touch)),
  fc.tuple(company, fc.nat(), fc.boolean(), fc.boolean()).map(([c, n, access, touch]) => new ChangePermission(c, n, access, touch)),
  fc.uniqueArray(fc.constantFrom(...POOL_GROUPS), { maxLength: 2 }).map((g) => new PostIntegrationUser(g)),
  fc
    .tuple(fc.nat(), fc.option(fc.uniqueArray(fc.constantFrom(...POOL_GROUPS), { maxLength: 2 }), { nil: undefined }), fc.boolean())
    .map(([n, g, c]) => new PatchIntegrationUser(n, g, c)),
  fc.tuple(fc.boolean(), fc.constantFrom<'json' | 'zip'>('json', 'zip')).map(([full, format]) => new Run(full, format)),
  fc.tuple(fc.boolean(), fc.constantFrom<'json' | 'zip'>('json', 'zip')).map(([full, format]) => new Run(full, format)),
  fc.integer({ min: 1, max: 8 }).map((at) => new InterruptedRun(at)),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 4 }), fc.nat()).map(([full, size, seed]) => new ShuffledRun(full, size, seed)),
  fc.tuple(fc.integer({ min: 1, max: 10 }), fc.boolean()).map(([at, full]) => new FailingRun(at, full)),
  fc.tuple(company, fc.nat()).map(([c, n]) => new MoveUser(c, n)),
  fc.nat().map((n) => new ReuseLogin(n)),
  fc.tuple(company, fc.nat(), fc.constantFrom('jobTitle', 'lastName', 'customNote'), fieldText).map(([c, n, f, t]) => new SameDateUpdate(c, n, f, t)),
  fc
    .tuple(company, fc.nat(), fc.option(fc.record({ name: fieldText, hasAccess: fc.boolean() }), { nil: undefined }), fc.boolean())
    .map(([c, n, readd, touch]) => new ChurnPermission(c, n, readd, touch)),
  fc
    .tuple(groupName, fieldText, fc.constantFrom('Administrator', 'Sales', 'Partner'), fc.boolean())
    .map(([g, label, type, touch]) => new RelabelGroup(g, label, type, touch)),
];

/** Index of the site's integration user among the host company's users (as `pick` numbers them). */
const integrationIndex = (h: Harness) => h.sim.users('_host').findIndex((u) => typeof u.oauthClientId === 'string');

describe('run sequences against a model (property)', () => {
  it(
    'after every run the tables, the change log and every earlier as-of state equal the model',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, commandSettings(14)), async (cmds) => {
          const { h, model } = await startCase();
          try {
            await fc.asyncModelRun(() => ({ model, real: { h } }), [...cmds, new Run(false, 'json'), new Run(true, 'json')]);
          } finally {
            await h.close();
          }
        }),
        runs(12, propertyTimeout(240_000)),
      );
    },
    propertyTimeout(240_000),
  );

  /** Sequences a search found, kept as they were minimized. */
  const sequences: Record<string, (h: Harness) => Cmd[]> = {
    // the new holder took the former integration user's OAuth client, partyNumber and flag (product:
    // fixed, another dateAdded is another user; keepStoredIntegrationFields)
    "a deleted integration user's login given to a company user before a full read": (h) => [
      new Run(true, 'json'),
      new DeleteUser('_host', integrationIndex(h)),
      new ReuseLogin(0),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    // a user moved away keeps its old raw (and the old label in it) until a full read deletes it;
    // cpq.groups has the label the last read gave (model, not product: fixed by storedGroups)
    'a relabelled group and a stale row of a moved user': () => [
      new ShuffledRun(false, 1, 0),
      new RelabelGroup('adminAccessGroupsOnly', 'Smith', 'Administrator'),
      new MoveUser('_host', 0),
      new CreateUser('_host'),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    // the integration read's window is the earliest company cursor's, wider than its own: it read the
    // backdated edit (model, not product: fixed in applyRun)
    'an integration user edited backwards after a shuffled full read': (h) => [
      new PatchIntegrationUser(0, [], false),
      new ShuffledRun(true, 1, 0),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    'variant: plain full run': (h) => [
      new PatchIntegrationUser(0, [], false),
      new Run(true, 'json'),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    'variant: no patch': (h) => [
      new Run(true, 'json'),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
    'variant: shuffled pages of 2': (h) => [
      new PatchIntegrationUser(0, [], false),
      new ShuffledRun(true, 2, 0),
      new BackdatedUpdate('_host', integrationIndex(h), 'Engineer', 86_400_000),
      new Run(false, 'json'),
      new Run(true, 'json'),
    ],
  };
  for (const [name, build] of Object.entries(sequences)) {
    it(`sequence: ${name}`, async () => {
      const { h, model } = await startCase();
      try {
        const cmds = build(h);
        await fc.asyncModelRun(() => ({ model, real: { h } }), cmds);
      } finally {
        await h.close();
      }
    }, 120_000);
  }
});

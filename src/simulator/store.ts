import { isLosslessNumber, LosslessNumber } from 'lossless-json';
import { chooseDrift, type FieldRenames } from './drift.js';
import { HOST_COMPANY, type AccessPermission, type CompanyInfo, type Group, type SiteDataFactory, type UserRecord } from './data.js';
import { integrationLogin, WriteRequestError, type GroupReference, type IntegrationUserWrite } from './integration-user-writes.js';
import { deepCopy, RawJson, setOwn } from './json.js';

export interface StoredUser {
  readonly company: string;
  record: UserRecord;
  /** Field-name drift applied when serialized; undefined = none. */
  renames: FieldRenames;
  /** Wire names a test chose for this user's fields: applied whether or not the site drifts, instead of `renames`. */
  spelling?: FieldRenames;
  /** Added with `exact`: groups and accessPermissions are sent as stored (missing, null, without items...), not normalized to `{items}`. */
  exact?: boolean;
  /** Keys (as the record holds them) said before their value with other values: see MutationOptions.earlierCopies. */
  earlier?: ReadonlyMap<string, readonly unknown[]>;
}

export interface MutationOptions {
  touch?: boolean;
  /** addUser: the record is exactly the fields given (no generated defaults, no dates added), relations sent as given. */
  exact?: boolean;
  /** addUser/updateUser: canonical field name -> the name it is sent under (e.g. lastName -> lastname). */
  spelling?: Record<string, string>;
  /**
   * addUser: key of the record -> values the key is said with first, in order, before the record's
   * own (`"login":"a","login":"b"`, JSON allowing a key twice). The record holds the last copy, as
   * a JSON reader reads it, so that the simulator's own reads (login order and filter, dateModified,
   * partyNumber, oauthClientId, company) take the copy that counts.
   */
  earlierCopies?: Record<string, readonly unknown[]>;
}

/**
 * Integration users are users bound 1:1 to an OAuth client: the host's (Oracle's samples), and a
 * partner organization's, which the feed (across all companies) returns with its company.
 */
export function isIntegrationUser(user: StoredUser): boolean {
  const clientId = user.record.oauthClientId;
  return typeof clientId === 'string' && clientId !== '';
}

export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Small LRU so paging through a filtered/sorted 1M-user collection is O(limit) per page. */
class ViewCache {
  private readonly entries = new Map<string, StoredUser[]>();

  constructor(private readonly capacity: number) {}

  get(key: string, compute: () => StoredUser[]): StoredUser[] {
    const cached = this.entries.get(key);
    if (cached) {
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached;
    }
    const view = compute();
    this.entries.set(key, view);
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    return view;
  }

  /** Drops every view, or every view `keep` does not name. */
  clear(keep?: (key: string) => boolean): void {
    if (!keep) this.entries.clear();
    else for (const key of [...this.entries.keys()]) if (!keep(key)) this.entries.delete(key);
  }
}

/**
 * The prefix of views that depend only on which users a company has and their logins. An edit
 * that keeps both keeps them: re-sorting 250,000 users after each edit made the simulator, not
 * the sync, most of an incremental benchmark run.
 */
const MEMBERSHIP_VIEW = 'membership\u0001';

/** A view's key prefix: MEMBERSHIP_VIEW when only membership and logins decide it (never who is an integration user: their records do). */
function viewPrefix(scope: UserScope, byLoginsOnly: boolean): string {
  return byLoginsOnly && scope.kind !== 'integration' ? MEMBERSHIP_VIEW : '';
}

export type UserScope = { kind: 'company'; company: string } | { kind: 'all' } | { kind: 'integration' };

function scopeKey(scope: UserScope): string {
  return scope.kind === 'company' ? `company:${scope.company}` : scope.kind;
}

/** Normalizes caller-supplied values: private copies, bigint -> LosslessNumber. */
function importValue(value: unknown): unknown {
  if (typeof value === 'bigint') return new LosslessNumber(value.toString());
  if (value === null || typeof value !== 'object' || isLosslessNumber(value) || value instanceof RawJson) return deepCopy(value);
  if (Array.isArray(value)) return value.map(importValue);
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) setOwn(copy, key, importValue(item));
  return copy;
}

function importField(key: string, value: unknown): unknown {
  if (key === 'partyId' && (typeof value === 'number' || typeof value === 'string')) return new LosslessNumber(String(value));
  if ((key === 'groups' || key === 'accessPermissions') && Array.isArray(value)) return { items: importValue(value) };
  return importValue(value);
}

export class UserStore {
  private readonly companyInfos: CompanyInfo[];
  /** company login -> (user login -> user), in insertion order. */
  private readonly companies = new Map<string, Map<string, StoredUser>>();
  private readonly byPartyNumber = new Map<string, StoredUser>();
  private readonly views = new ViewCache(32);
  private readonly nextUserIndex = new Map<string, number>();
  private nextGlobalIndex: number;
  private nextIntegrationIndex: number;

  constructor(
    private readonly factory: SiteDataFactory,
    private readonly driftSeed: number | undefined,
    usersPerCompany: number,
  ) {
    const site = factory.generateSite();
    this.companyInfos = site.companies;
    for (const company of site.companies) {
      this.companies.set(company.loginName, new Map());
      this.nextUserIndex.set(company.loginName, usersPerCompany);
    }
    for (const generated of site.users) this.insert(generated.company, generated.record);
    this.nextGlobalIndex = factory.generatedUserCount;
    this.nextIntegrationIndex = site.users.filter((generated) => generated.isIntegration).length;
  }

  companyList(): readonly CompanyInfo[] {
    return this.companyInfos;
  }

  hasCompany(company: string): boolean {
    return this.companies.has(company);
  }

  find(company: string, login: string): StoredUser | undefined {
    return this.companies.get(company)?.get(login);
  }

  findByPartyNumber(partyNumber: string): StoredUser | undefined {
    return this.byPartyNumber.get(partyNumber);
  }

  /**
   * The users of a scope, filtered and sorted. Results are cached by the caller's keys for the
   * filter and the order until the next mutation; an order by logins alone (`byLoginsOnly`)
   * outlives edits that change neither membership nor logins.
   */
  select(
    scope: UserScope,
    order: { key: string; byLoginsOnly: boolean; sort: (users: StoredUser[]) => StoredUser[] },
    filter: { key: string; test: (user: StoredUser) => boolean } | undefined,
  ): StoredUser[] {
    const sortedKey = `${viewPrefix(scope, order.byLoginsOnly)}${scopeKey(scope)}\u0001${order.key}`;
    const sorted = this.views.get(sortedKey, () => order.sort(this.insertionOrder(scope).slice()));
    if (!filter) return sorted;
    return this.views.get(`filtered\u0001${sortedKey}\u0001${filter.key}`, () => sorted.filter(filter.test));
  }

  /** Unsorted base view: insertion order, which CPQ does not promise either. */
  insertionOrder(scope: UserScope): StoredUser[] {
    return this.views.get(`${viewPrefix(scope, true)}base:${scopeKey(scope)}`, () => {
      if (scope.kind === 'company') return [...(this.companies.get(scope.company)?.values() ?? [])];
      const all: StoredUser[] = [];
      for (const users of this.companies.values()) for (const user of users.values()) all.push(user);
      return scope.kind === 'all' ? all : all.filter(isIntegrationUser);
    });
  }

  addUser(company: string, fields: Record<string, unknown>, nowIso: string, options: MutationOptions): string {
    const users = this.requireCompany(company);
    let index = this.nextUserIndex.get(company) ?? 0;
    let record: UserRecord = {};
    if (!options.exact) {
      record = this.factory.companyUser(company, index++, this.nextGlobalIndex++);
      if (fields.login === undefined) {
        while (users.has(record.login as string)) record = this.factory.companyUser(company, index++, this.nextGlobalIndex++);
      }
    }
    this.nextUserIndex.set(company, index);
    for (const [key, value] of Object.entries(fields)) {
      // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- a patch value of undefined removes the field it names
      if (value === undefined) delete record[key];
      else setOwn(record, key, options.exact ? importValue(value) : importField(key, value));
    }
    const login = record.login;
    if (typeof login !== 'string' || login === '') throw new Error('login must be a non-empty string');
    if (users.has(login)) throw new Error(`user ${login} already exists in company ${company}`);
    const partyNumber = record.partyNumber;
    if (typeof partyNumber === 'string' && this.byPartyNumber.has(partyNumber)) {
      throw new Error(`partyNumber ${partyNumber} is already used`);
    }
    if (options.touch !== false && !options.exact) {
      if (fields.dateAdded === undefined) record.dateAdded = nowIso;
      if (fields.dateModified === undefined) record.dateModified = nowIso;
    }
    this.insert(company, record);
    const added = this.companies.get(company)!.get(login)!;
    if (options.spelling) added.spelling = new Map(Object.entries(options.spelling));
    if (options.exact) added.exact = true;
    if (options.earlierCopies) added.earlier = new Map(Object.entries(options.earlierCopies).map(([key, copies]) => [key, copies.map(importValue)]));
    this.changed('membership');
    return login;
  }

  /** A patch value of undefined removes the field. An explicit dateModified in the patch wins. */
  updateUser(company: string, login: string, patch: Record<string, unknown>, nowIso: string, options: MutationOptions): void {
    const users = this.requireCompany(company);
    const user = this.require(company, login);
    const newLogin = patch.login;
    if (newLogin !== undefined && newLogin !== login) {
      if (typeof newLogin !== 'string' || newLogin === '') throw new Error('login must be a non-empty string');
      if (users.has(newLogin)) throw new Error(`user ${newLogin} already exists in company ${company}`);
    }
    const newPartyNumber = patch.partyNumber;
    if (typeof newPartyNumber === 'string' && newPartyNumber !== user.record.partyNumber && this.byPartyNumber.has(newPartyNumber)) {
      throw new Error(`partyNumber ${newPartyNumber} is already used`);
    }
    const oldPartyNumber = user.record.partyNumber;
    const record = { ...user.record };
    for (const [key, value] of Object.entries(patch)) {
      // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- a patch value of undefined removes the field it names
      if (value === undefined) delete record[key];
      else setOwn(record, key, importField(key, value));
    }
    if (options.touch !== false && !('dateModified' in patch)) record.dateModified = nowIso;
    user.record = record;
    if (options.spelling) user.spelling = new Map(Object.entries(options.spelling));
    if (oldPartyNumber !== record.partyNumber) {
      if (typeof oldPartyNumber === 'string') this.byPartyNumber.delete(oldPartyNumber);
      if (typeof record.partyNumber === 'string') this.byPartyNumber.set(record.partyNumber, user);
    }
    if (typeof newLogin === 'string' && newLogin !== login) {
      user.renames = this.driftFor(company, newLogin);
      // Rebuild so the renamed user keeps its place in insertion order.
      const entries = [...users.entries()].map(([key, value]): [string, StoredUser] => (key === login ? [newLogin, value] : [key, value]));
      users.clear();
      for (const [key, value] of entries) users.set(key, value);
    }
    this.changed('login' in patch && newLogin !== login ? 'membership' : 'content');
  }

  /**
   * POST /integrationUsers: a host user bound to the OAuth client, shaped like the generated
   * integration users (new partyId/partyNumber), added and modified now. Throws WriteRequestError.
   */
  createIntegrationUser(write: IntegrationUserWrite, nowIso: string): StoredUser {
    const clientId = write.oauthClientId!;
    const login = integrationLogin(clientId);
    if (this.boundUser(clientId)) throw new WriteRequestError(409, `An integration user for OAuth client ${clientId} already exists.`);
    if (this.find(HOST_COMPANY, login)) throw new WriteRequestError(409, `A user with login ${login} already exists.`);
    const record = this.factory.integrationUser(this.nextIntegrationIndex++, this.nextGlobalIndex++);
    while (typeof record.partyNumber === 'string' && this.byPartyNumber.has(record.partyNumber)) record.partyNumber = `${record.partyNumber}x`;
    record.login = login;
    record.oauthClientId = clientId;
    record.dateAdded = nowIso;
    record.dateModified = nowIso;
    delete record.lastLogin;
    record.groups = { items: this.groupItems(write.groups ?? []) };
    this.insert(HOST_COMPANY, record);
    this.changed('membership');
    return this.require(HOST_COMPANY, login);
  }

  /** PATCH /integrationUsers/{partyNumber}: dateModified moves only when something changed. Throws WriteRequestError. */
  updateIntegrationUser(partyNumber: string, write: IntegrationUserWrite, nowIso: string): StoredUser {
    const user = this.byPartyNumber.get(partyNumber);
    if (!user || !isIntegrationUser(user)) throw new WriteRequestError(404, `Integration user ${partyNumber} not found.`);
    const patch: Record<string, unknown> = {};
    if (write.oauthClientId !== undefined && write.oauthClientId !== user.record.oauthClientId) {
      if (this.boundUser(write.oauthClientId)) throw new WriteRequestError(409, `An integration user for OAuth client ${write.oauthClientId} already exists.`);
      patch.oauthClientId = write.oauthClientId;
    }
    if (write.groups !== undefined) {
      const items = this.groupItems(write.groups);
      const current = (user.record.groups as { items?: unknown[] } | undefined)?.items;
      if (JSON.stringify(current ?? null) !== JSON.stringify(items)) patch.groups = { items };
    }
    if (Object.keys(patch).length > 0) this.updateUser(user.company, user.record.login as string, patch, nowIso, {});
    return user;
  }

  deleteUser(company: string, login: string): void {
    const user = this.require(company, login);
    this.requireCompany(company).delete(login);
    const partyNumber = user.record.partyNumber;
    if (typeof partyNumber === 'string' && this.byPartyNumber.get(partyNumber) === user) this.byPartyNumber.delete(partyNumber);
    this.changed('membership');
  }

  /** Replaces a group with the same variableName, else appends. */
  addGroup(company: string, login: string, group: Group, nowIso: string, options: MutationOptions): void {
    const user = this.require(company, login);
    const items = this.relationItems<Group>(user, 'groups').filter((g) => g.variableName !== group.variableName);
    items.push({ variableName: group.variableName, label: group.label, type: group.type });
    this.replaceRelation(user, 'groups', items, nowIso, options);
  }

  /** No-op (and no dateModified change) when the user is not in the group. */
  removeGroup(company: string, login: string, variableName: string, nowIso: string, options: MutationOptions): void {
    const user = this.require(company, login);
    const current = this.relationItems<Group>(user, 'groups');
    const items = current.filter((g) => g.variableName !== variableName);
    if (items.length === current.length) return;
    this.replaceRelation(user, 'groups', items, nowIso, options);
  }

  /** Upsert keyed by (type, variableName). */
  setAccessPermission(company: string, login: string, perm: AccessPermission, nowIso: string, options: MutationOptions): void {
    const user = this.require(company, login);
    const items = this.relationItems<AccessPermission>(user, 'accessPermissions');
    const fresh: AccessPermission = { type: perm.type, variableName: perm.variableName, name: perm.name, hasAccess: perm.hasAccess };
    const at = items.findIndex((p) => p.type === perm.type && p.variableName === perm.variableName);
    if (at >= 0) items[at] = fresh;
    else items.push(fresh);
    this.replaceRelation(user, 'accessPermissions', items, nowIso, options);
  }

  /**
   * The site's group `variableName` gets another label and type: the pool's definition (new
   * members and integration-user writes take it) and every member's item; each member's
   * dateModified moves unless touch is false.
   */
  relabelGroup(variableName: string, label: string, type: string, nowIso: string, options: MutationOptions): void {
    this.factory.redefineGroup(variableName, label, type);
    for (const users of this.companies.values()) {
      for (const user of users.values()) {
        const items = this.relationItems<Group>(user, 'groups');
        if (!items.some((g) => g.variableName === variableName)) continue;
        this.replaceRelation(
          user,
          'groups',
          items.map((g) => (g.variableName === variableName ? { ...g, label, type } : g)),
          nowIso,
          options,
        );
      }
    }
  }

  driftFor(company: string, login: string): FieldRenames {
    return this.driftSeed === undefined ? undefined : chooseDrift(this.driftSeed, company, login);
  }

  private boundUser(oauthClientId: string): StoredUser | undefined {
    return this.insertionOrder({ kind: 'integration' }).find((user) => user.record.oauthClientId === oauthClientId);
  }

  /** Memberships as a write names them: label and type from the body, else from the site's group of that name. */
  private groupItems(groups: readonly GroupReference[]): Record<string, string>[] {
    const byName = new Map<string, Record<string, string>>();
    for (const group of groups) {
      const known = this.factory.groupPool.find((g) => g.variableName === group.variableName);
      const item: Record<string, string> = { variableName: group.variableName };
      const label = group.label ?? known?.label;
      const type = group.type ?? known?.type;
      if (label !== undefined) item.label = label;
      if (type !== undefined) item.type = type;
      byName.set(group.variableName, item);
    }
    return [...byName.values()];
  }

  private insert(company: string, record: UserRecord): void {
    const login = record.login as string;
    const user: StoredUser = { company, record, renames: this.driftFor(company, login) };
    this.requireCompany(company).set(login, user);
    if (typeof record.partyNumber === 'string') this.byPartyNumber.set(record.partyNumber, user);
  }

  /** A fresh array (stored items may be shared frozen objects, never edited in place). */
  private relationItems<T>(user: StoredUser, relation: 'groups' | 'accessPermissions'): T[] {
    const value = user.record[relation] as { items?: T[] } | undefined;
    return Array.isArray(value?.items) ? value.items.slice() : [];
  }

  private replaceRelation(user: StoredUser, relation: 'groups' | 'accessPermissions', items: unknown[], nowIso: string, options: MutationOptions): void {
    const record = { ...user.record, [relation]: { items } };
    if (options.touch !== false) record.dateModified = nowIso;
    user.record = record;
    this.changed('content');
  }

  private requireCompany(company: string): Map<string, StoredUser> {
    const users = this.companies.get(company);
    if (!users) throw new Error(`unknown company: ${company}`);
    return users;
  }

  private require(company: string, login: string): StoredUser {
    const user = this.requireCompany(company).get(login);
    if (!user) throw new Error(`unknown user ${login} in company ${company}`);
    return user;
  }

  /** 'content': no user was added, deleted or renamed. */
  private changed(what: 'membership' | 'content'): void {
    if (what === 'membership') this.views.clear();
    else this.views.clear((key) => key.startsWith(MEMBERSHIP_VIEW));
  }
}

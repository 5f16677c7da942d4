import { canonicalFieldName, keyOfField } from '../cpq/user-fields.js';
import { instantMicros } from '../date-time.js';
import { carriesItems, storedText } from './user-record.js';

/**
 * Which feed provides which user fields, and the one rule for a field a read did not include:
 * absent is not null.
 *
 * Users come from two feeds (../shared/cpq-api):
 * - the company feed, `GET {prefix}/rest/v16/companies/{company}/users` as JSON pages or as the
 *   zip export: names, addresses, flags, preferences, dates, groups and access permissions.
 *   Oracle's v16 sample carries no `partyId`, `partyNumber`, `id`, `oauthClientId` or `company`
 *   (`company` is "applicable only for Users Across Companies"); sites from release 25A add
 *   `partyId` and `partyNumber`. A CSV zip entry carries no access permissions.
 * - the integration feed, `GET /cpq/rest/v19/integrationUsers`: flags, preferences, dates and
 *   groups, plus the fields below; no names, addresses or access permissions.
 *
 * A host user that is also an integration user is one row, merged from both feeds, with
 * `is_integration_user = true`. A run may read it from one feed only: an incremental read of
 * the other feed did not return it (its window missed the user), the zip export re-read it while
 * the integration feed was read incrementally, or a feed is off or absent on the site. Such a
 * read keeps what the other feed gave: its typed columns, its part of `raw`, and so the content
 * hash, and it logs no change for them. Only the feed that provides a field changes or clears
 * it; `is_integration_user` ends only when a full, complete read of the integration feed no
 * longer returns the user. A user both feeds return in one run takes the integration feed's
 * value of a field both send, unless CPQ changed the user between the two reads (mergeBothFeeds).
 */

/**
 * The fields the integration feed sends (canonical names): those of Oracle's v19 integration-user
 * samples (list and detail), but the login, links and groups (a relation, kept by its own rule).
 * A company-feed record of an integration user that lacks one of them (Oracle's v16 sample has no
 * partyId, partyNumber, id, oauthClientId, company, isApplicationAdminPermEnabled) takes it from
 * the stored record. Not every field it lacks: a field only the company feed sends (a name, a
 * custom field) that it left out is gone, as for any user; kept, it would outlive its removal.
 */
export const INTEGRATION_FEED_FIELDS: ReadonlySet<string> = new Set([
  'partyId',
  'partyNumber',
  'id',
  'oauthClientId',
  'company',
  'isUserAdminPermEnabled',
  'isApplicationAdminPermEnabled',
  'isAccessAdminPermEnabled',
  'isProxyPermEnabled',
  'isWebServicesOnly',
  'isNotifyEmail',
  'isNotifyFax',
  'dateAdded',
  'dateModified',
  'lastLogin',
  'type',
  'language',
  'currency',
  'numberFormat',
  'timeZone',
  'units',
  'dateFormat',
  'status',
]);

/**
 * Of INTEGRATION_FEED_FIELDS, those Oracle's v16 company-user sample does not have: the company
 * feed need not send them (sites from 25A add partyId and partyNumber, which an integration record
 * carries too). A stored record's are not kept for an integration record that leaves one out
 * (stageIntegrationOnly): as for any feed, a field its provider leaves out is gone.
 */
export const INTEGRATION_ONLY_FIELDS: ReadonlySet<string> = new Set([
  'partyId',
  'partyNumber',
  'id',
  'oauthClientId',
  'company',
  'isApplicationAdminPermEnabled',
]);

type Raw = Record<string, unknown>;

/** `stored` without the integration feed's fields the company feed need not send (INTEGRATION_ONLY_FIELDS), under any spelling. */
export function withoutIntegrationOnlyFields(stored: Raw): Raw {
  return Object.fromEntries(Object.entries(stored).filter(([key]) => !INTEGRATION_ONLY_FIELDS.has(canonicalFieldName(key) ?? '')));
}

/**
 * A record's dateModified as an instant (instantMicros), when it is a date-time: of two spellings,
 * the one the normalizer stores (keyOfField), not the first sent (review GV: key order alone
 * decided which feed won, and the same data sent in another order logged a change).
 */
function modifiedAt(record: Raw): number | undefined {
  const key = keyOfField(record, 'dateModified');
  const value = key === undefined ? undefined : record[key];
  return typeof value === 'string' ? instantMicros(value) : undefined;
}

/**
 * A user both feeds returned this run. The integration feed is read first: when the company
 * feed's record (read later) says it was modified later, CPQ changed the user between the two
 * reads, and the company record's fields win, the integration record giving what it lacks (the
 * fields only that feed sends); otherwise the integration record wins every field both send
 * (keepCompanyFeedFields). Laid the other way, the row mixed the edit's company-only fields with
 * the integration feed's values from before it: a state CPQ never held.
 */
export function mergeBothFeeds(integrationRecord: Raw, companyRecord: Raw): Raw {
  const integrationAt = modifiedAt(integrationRecord);
  const companyAt = modifiedAt(companyRecord);
  if (integrationAt === undefined || companyAt === undefined || companyAt <= integrationAt) return keepCompanyFeedFields(integrationRecord, companyRecord);
  const integration = withoutUncarriedRelations(integrationRecord);
  return layOver(describedGroups(withoutUncarriedRelations(companyRecord), integration), integration);
}

type Item = Record<string, unknown>;

/** A relation's items, when it is `{items: [objects]}` under exactly that key (user-record's itemsOf reads any spelling, and pages). */
function itemObjects(relation: unknown): Item[] | undefined {
  if (typeof relation !== 'object' || relation === null) return undefined;
  const items = (relation as { items?: unknown }).items;
  return Array.isArray(items) && items.every((i) => typeof i === 'object' && i !== null && !Array.isArray(i)) ? (items as Item[]) : undefined;
}

/**
 * `company`'s groups, each with the label and type `integration` gives the group of that name, when
 * the company feed describes none (a CSV export names groups by variable name alone): the
 * membership is the later record's, and what each group is called stays known (review CO: the
 * raced run's raw and version lost every label, put back by the next run).
 */
function describedGroups(company: Raw, integration: Raw): Raw {
  const key = keyOfField(company, 'groups');
  const otherKey = keyOfField(integration, 'groups');
  const items = key === undefined ? undefined : itemObjects(company[key]);
  const known = otherKey === undefined ? undefined : itemObjects(integration[otherKey]);
  if (key === undefined || items === undefined || known === undefined || items.some((g) => 'label' in g || 'type' in g)) return company;
  // A group the integration record lists twice: the copy readGroups counts (groupOutranks), not the
  // last, which made the label follow the order CPQ happened to send (review DC left this one).
  const byName = new Map<unknown, Item>();
  for (const g of known) {
    const kept = byName.get(g.variableName);
    if (kept === undefined || describesBetter(g, kept)) byName.set(g.variableName, g);
  }
  const described = items.map((g) => {
    const other = byName.get(g.variableName);
    return other === undefined ? g : { ...g, ...('label' in other ? { label: other.label } : {}), ...('type' in other ? { type: other.type } : {}) };
  });
  return { ...company, [key]: { ...(company[key] as Raw), items: described } };
}

/**
 * Of two copies of a group, whether `a` is the one whose label and type count: groupOutranks'
 * choice (user-record.ts) for a user's own list, on the texts the columns store (storedText): the
 * one saying its label or type, then the greater label, then the greater type, text above null.
 * Copies equal in both give the same label and type whichever is kept.
 */
function describesBetter(a: Item, b: Item): boolean {
  const says = (g: Item) => 'label' in g || 'type' in g;
  if (says(a) !== says(b)) return says(a);
  const text = (v: unknown) => storedText(v) ?? null;
  const greater = (x: string | null, y: string | null) => x !== null && (y === null || x > y);
  const [labelA, labelB] = [text(a.label), text(b.label)];
  return labelA !== labelB ? greater(labelA, labelB) : greater(text(a.type), text(b.type));
}

const RELATIONS: ReadonlySet<string> = new Set(['groups', 'accessPermissions']);

/**
 * `record` without a relation it does not carry ({links} of a collection not expanded): such a
 * relation says nothing of its members, so the other feed's stay.
 */
function withoutUncarriedRelations(record: Raw): Raw {
  const uncarried = ([key, value]: [string, unknown]) => RELATIONS.has(canonicalFieldName(key) ?? '') && !carriesItems(value);
  return Object.entries(record).some(uncarried) ? Object.fromEntries(Object.entries(record).filter((entry) => !uncarried(entry))) : record;
}

/**
 * A company-feed record of a stored integration user that this run's integration read did not
 * return: the integration feed's fields it lacks (under any spelling) are taken from `stored`,
 * the user's stored record, as a read of both feeds would have given them: those the integration
 * feed's record had at its last read (`integrationFields`, cpq.user_feed_fields), a relation aside
 * (a company record's groups and permissions are its own); where that list is not known (a row
 * stored before it was kept), the fields Oracle's samples of that feed name (INTEGRATION_FEED_FIELDS).
 * Before the list, a custom field only the integration feed sends was dropped here, logged as
 * removed, and added back by that feed's next read.
 */
export function keepIntegrationFeedFields(companyRecord: Raw, stored: Raw, integrationFields: readonly string[] | undefined): Raw {
  const given = integrationFields === undefined ? undefined : new Set(integrationFields);
  const givenByIntegrationFeed = (name: string) => (given === undefined ? INTEGRATION_FEED_FIELDS.has(name) : given.has(name) && !RELATIONS.has(name));
  return layOver(companyRecord, Object.fromEntries(Object.entries(stored).filter(([key]) => givenByIntegrationFeed(canonicalFieldName(key) ?? key))));
}

/**
 * Of a stored integration user's record, what the company feed gave: the fields its record had at
 * its last read (`companyFields`, cpq.user_feed_fields). A read of the integration feed alone
 * keeps these and no other field it leaves out: one only that feed gave, and now leaves out, is
 * gone (kept, a site sending a new custom field in every run grew the row by a record per run).
 * Without the list (a row stored before it was kept, or a company user's) every stored field is
 * taken for the company feed's.
 */
export function givenByCompanyFeed(stored: Raw, companyFields: readonly string[] | undefined): Raw {
  if (companyFields === undefined) return stored;
  const given = new Set(companyFields);
  return Object.fromEntries(Object.entries(stored).filter(([key]) => given.has(canonicalFieldName(key) ?? key)));
}

/**
 * `record` with the fields of `under` it does not carry (by canonical name: a field it carries
 * under another spelling replaces `under`'s; kept beside it, the other spelling could win when read).
 */
export function layOver(record: Raw, under: Raw): Raw {
  const present = fieldsIn(record);
  // fromEntries, not assignment: a key "__proto__" of `under` stays an ordinary field.
  const kept = Object.fromEntries(Object.entries(under).filter(([key]) => !present.has(canonicalFieldName(key) ?? key)));
  return { ...kept, ...record };
}

/**
 * An integration-feed record of a stored user that this run's company reads did not return: the
 * stored record with the integration feed's fields laid over it, so what only the company feed
 * carries (names, addresses, access permissions) is kept. The same for a user both feeds returned
 * this run, over the company feed's record, unless that one is the later (mergeBothFeeds).
 */
export function keepCompanyFeedFields(integrationRecord: Raw, stored: Raw | undefined): Raw {
  if (!stored) return integrationRecord;
  // By canonical name (layOver): a field the record carries under another spelling than the stored
  // one (isSuperUserPermEnabled from the detail endpoint, isUserAdminPermEnabled in the list)
  // replaces it; kept beside it, the stored spelling would win when read and a revoked flag stay set.
  return layOver(withoutUncarriedRelations(integrationRecord), stored);
}

/** The fields a record carries: canonical names of known fields, keys as they are of the others (as cpq.user_feed_fields names them). */
export function fieldsIn(record: Raw): Set<string> {
  return new Set(Object.keys(record).map((key) => canonicalFieldName(key) ?? key));
}

import type { StoredUser } from './store.js';
import { RawJson, saidAfter, setOwn, toWireValue } from './json.js';
import { isPlainObject } from './query.js';

export interface Link {
  rel: string;
  href: string;
}

/** How one user is written on one endpoint. */
export interface UserWireShape {
  /** Absolute URL of the user on this endpoint family (self link). */
  selfHref: string;
  /** v16-v18 company-user records carry no partyId/partyNumber (Oracle's v16 sample). */
  includePartyKeys: boolean;
  /** `company` is "applicable only for Users Across Companies" (and integration users). */
  includeCompany: boolean;
  expandGroups: boolean;
  expandAccessPermissions: boolean;
  fields: ReadonlySet<string> | undefined;
  excludeLinks: ReadonlySet<string> | undefined;
  drift: boolean;
}

const RELATIONS = ['groups', 'accessPermissions'] as const;

export function keepLinks(links: Link[], excluded: ReadonlySet<string> | undefined): Link[] {
  return excluded ? links.filter((link) => !excluded.has(link.rel)) : links;
}

/** The user as a plain object ready for stringifyWire (int64 marked, drift applied). */
export function toWireUser(user: StoredUser, shape: UserWireShape): Record<string, unknown> {
  const { record } = user;
  const renames = user.spelling ?? (shape.drift ? user.renames : undefined);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(record)) {
    if (key === 'groups' || key === 'accessPermissions') continue;
    if (!shape.includePartyKeys && (key === 'partyId' || key === 'partyNumber')) continue;
    if (!shape.includeCompany && key === 'company') continue;
    if (shape.fields && !shape.fields.has(key)) continue;
    const wire = renames?.get(key) ?? key;
    const earlier = user.earlier?.get(key);
    setOwn(out, wire, earlier === undefined ? toWireValue(record[key]) : saidAfter(wire, earlier, record[key]));
  }
  const links: Link[] = [{ rel: 'self', href: shape.selfHref }];
  for (const relation of RELATIONS) links.push({ rel: 'child', href: `${shape.selfHref}/${relation}` });
  out.links = keepLinks(links, shape.excludeLinks);
  for (const relation of RELATIONS) {
    const expanded = relation === 'groups' ? shape.expandGroups : shape.expandAccessPermissions;
    if (!expanded) continue;
    // An exact record holds the relation as it was imported, whatever that is.
    const value = record[relation];
    if (user.exact) {
      const links = keepLinks(
        [
          { rel: 'self', href: `${shape.selfHref}/${relation}` },
          { rel: 'parent', href: shape.selfHref },
        ],
        shape.excludeLinks,
      );
      if (value === undefined) continue;
      const sent = value instanceof RawJson ? withLinks(value, links) : isPlainObject(value) ? { ...value, links } : value;
      const earlier = user.earlier?.get(relation);
      out[relation] = earlier === undefined ? toWireValue(sent) : saidAfter(relation, earlier, sent);
      continue;
    }
    out[relation] = {
      items: toWireValue((value as { items?: unknown[] } | undefined)?.items ?? []),
      links: keepLinks(
        [
          { rel: 'self', href: `${shape.selfHref}/${relation}` },
          { rel: 'parent', href: shape.selfHref },
        ],
        shape.excludeLinks,
      ),
    };
  }
  return out;
}

/** An object sent as exact text (its keys said twice, say), with the relation's links added after its own keys. */
function withLinks(value: RawJson, links: Link[]): RawJson {
  const text = value.text.trim();
  if (!text.startsWith('{')) return value;
  const inner = text.slice(1, -1).trim();
  return new RawJson(`{${inner}${inner === '' ? '' : ','}"links":${JSON.stringify(links)}}`);
}

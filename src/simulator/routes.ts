/** Which simulated endpoint a request addresses. Pure: no data access. */

export type Route =
  | { kind: 'token' }
  | { kind: 'companies'; version: number }
  | { kind: 'companyUsers'; version: number; company: string }
  | { kind: 'companyUser'; version: number; company: string; login: string }
  | { kind: 'allUsers' }
  | { kind: 'user'; partyNumber: string }
  | { kind: 'integrationUsers' }
  | { kind: 'integrationUser'; partyNumber: string }
  | { kind: 'createIntegrationUser' }
  | { kind: 'updateIntegrationUser'; partyNumber: string };

export interface RouteSettings {
  pathPrefix: '' | '/cpq';
  fusion: boolean;
  oauth: boolean;
}

export const TOKEN_PATH = '/oauth2/v1/token';
/** Integration users exist only on Fusion sites, which always use the /cpq prefix. */
export const INTEGRATION_USERS_PATH = '/cpq/rest/v19/integrationUsers';

function decodeSegments(path: string): string[] | undefined {
  try {
    return path.split('/').map((segment) => decodeURIComponent(segment));
  } catch {
    return undefined;
  }
}

export function resolveRoute(method: string, pathname: string, settings: RouteSettings): Route | undefined {
  if (pathname === TOKEN_PATH) return method === 'POST' && settings.oauth ? { kind: 'token' } : undefined;
  if (settings.fusion && method === 'POST' && pathname === INTEGRATION_USERS_PATH) return { kind: 'createIntegrationUser' };
  if (settings.fusion && method === 'PATCH' && pathname.startsWith(`${INTEGRATION_USERS_PATH}/`)) {
    const rest = decodeSegments(pathname.slice(INTEGRATION_USERS_PATH.length + 1));
    return rest?.length === 1 && rest[0] !== '' ? { kind: 'updateIntegrationUser', partyNumber: rest[0] as string } : undefined;
  }
  if (method !== 'GET') return undefined;

  if (settings.fusion && (pathname === INTEGRATION_USERS_PATH || pathname.startsWith(`${INTEGRATION_USERS_PATH}/`))) {
    const rest = decodeSegments(pathname.slice(INTEGRATION_USERS_PATH.length + 1));
    if (pathname === INTEGRATION_USERS_PATH) return { kind: 'integrationUsers' };
    if (rest?.length === 1 && rest[0] !== '') return { kind: 'integrationUser', partyNumber: rest[0] as string };
    return undefined;
  }

  const restRoot = `${settings.pathPrefix}/rest/`;
  if (!pathname.startsWith(restRoot)) return undefined;
  const versioned = /^v(1[6-9])\/(.+)$/.exec(pathname.slice(restRoot.length));
  if (!versioned) return undefined;
  const version = Number(versioned[1]);
  const segments = decodeSegments(versioned[2] as string);
  if (!segments || segments.some((segment) => segment === '')) return undefined;
  const [resource, id, child, childId, ...extra] = segments;
  if (extra.length > 0) return undefined;

  if (resource === 'companies') {
    if (id === undefined) return { kind: 'companies', version };
    if (child === 'users' && childId === undefined) return { kind: 'companyUsers', version, company: id };
    if (child === 'users' && childId !== undefined) return { kind: 'companyUser', version, company: id, login: childId };
    return undefined;
  }
  if (resource === 'users' && version === 19 && child === undefined) {
    return id === undefined ? { kind: 'allUsers' } : { kind: 'user', partyNumber: id };
  }
  return undefined;
}

/**
 * Request bodies of `POST /cpq/rest/v19/integrationUsers` and
 * `PATCH /cpq/rest/v19/integrationUsers/{partyNumber}`, checked. Pure: no data access.
 *
 * Oracle's page (integration-users-v19.txt) shows a create body of `oauthClientId` and `groups`
 * and an update body of `groups` alone, each answered with the integration user. It documents no
 * required fields and no error bodies; the simulator's choices: a create needs a non-empty
 * `oauthClientId` (an integration user is bound to an OAuth client), `groups` is optional and
 * replaces the memberships, any other field is refused, and a refused body is a 400 with the
 * simulator's usual error body naming the field.
 */

export class WriteRequestError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

/** A group as the body names it; label and type are optional (the site's definition fills them). */
export interface GroupReference {
  variableName: string;
  label?: string;
  type?: string;
}

export interface IntegrationUserWrite {
  oauthClientId?: string;
  groups?: GroupReference[];
}

const WRITABLE_FIELDS = new Set(['oauthClientId', 'groups']);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function fail(message: string): never {
  throw new WriteRequestError(400, message);
}

function optionalText(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') fail(`Field "${field}" must be a string.`);
  return value;
}

function readGroups(value: unknown): GroupReference[] {
  const items = isObject(value) ? value.items : undefined;
  if (!Array.isArray(items)) fail('Field "groups" must be an object with an "items" array.');
  return items.map((item, i) => {
    if (!isObject(item)) fail(`Field "groups.items[${i}]" must be an object.`);
    const variableName = item.variableName;
    if (typeof variableName !== 'string' || variableName === '') fail(`Field "groups.items[${i}].variableName" must be a non-empty string.`);
    const group: GroupReference = { variableName };
    const label = optionalText(item.label, `groups.items[${i}].label`);
    const type = optionalText(item.type, `groups.items[${i}].type`);
    if (label !== undefined) group.label = label;
    if (type !== undefined) group.type = type;
    return group;
  });
}

/** The body of a create (`required`: oauthClientId must be there) or an update. Throws WriteRequestError (400). */
export function parseIntegrationUserWrite(body: string, kind: 'create' | 'update'): IntegrationUserWrite {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    fail('The request body is not valid JSON.');
  }
  if (!isObject(parsed)) fail('The request body must be a JSON object.');
  for (const key of Object.keys(parsed)) {
    if (!WRITABLE_FIELDS.has(key)) fail(`Field "${key}" cannot be set on an integration user (only oauthClientId and groups).`);
  }
  const write: IntegrationUserWrite = {};
  if (parsed.oauthClientId !== undefined || kind === 'create') {
    const clientId = parsed.oauthClientId;
    if (clientId === undefined || clientId === null) fail('Field "oauthClientId" is required.');
    if (typeof clientId !== 'string' || clientId.trim() === '') fail('Field "oauthClientId" must be a non-empty string.');
    write.oauthClientId = clientId;
  }
  if (parsed.groups !== undefined) write.groups = readGroups(parsed.groups);
  return write;
}

/** Login of an integration user created for an OAuth client, as in Oracle's samples (`_custom_<client id>`). */
export function integrationLogin(oauthClientId: string): string {
  return `_custom_${oauthClientId}`;
}

import { randomBytes } from 'node:crypto';

export interface SimulatorAuth {
  /** Basic credentials; without `username`, any user with the password (`cpq-sync simulate --password`). */
  basic?: { username?: string; password: string };
  /** Static tokens accepted as `Authorization: Bearer <token>`. */
  bearerTokens?: string[];
  /** Client-credentials grant at POST /oauth2/v1/token. tokenTtlSeconds defaults to 3600. */
  oauth?: { clientId: string; clientSecret: string; tokenTtlSeconds?: number };
}

export type PresentedAuthorization = 'basic' | 'bearer' | 'none';

export interface TokenResponse {
  status: number;
  body: Record<string, unknown>;
}

const DEFAULT_TOKEN_TTL_SECONDS = 3600;

interface Credentials {
  scheme: 'basic' | 'bearer';
  value: string;
}

function parseAuthorization(header: string | undefined): Credentials | undefined {
  const match = /^\s*(\w+)\s+(\S+)\s*$/.exec(header ?? '');
  if (!match) return undefined;
  const scheme = (match[1] as string).toLowerCase();
  if (scheme !== 'basic' && scheme !== 'bearer') return undefined;
  return { scheme, value: match[2] as string };
}

function decodeBasic(value: string): { user: string; secret: string } | undefined {
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

/** RFC 6749 says client credentials are form-encoded before Basic encoding; clients differ. */
function formDecode(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/** Checks API credentials and runs the OAuth client-credentials token endpoint. */
export class AuthGate {
  /** token -> expiry (ms since epoch) */
  private readonly issuedTokens = new Map<string, number>();

  constructor(
    private readonly auth: SimulatorAuth | undefined,
    private readonly now: () => Date,
  ) {}

  get oauthEnabled(): boolean {
    return this.auth?.oauth !== undefined;
  }

  get challenge(): string {
    return this.auth?.basic ? 'Basic realm="CPQ"' : 'Bearer';
  }

  presented(header: string | undefined): PresentedAuthorization {
    return parseAuthorization(header)?.scheme ?? 'none';
  }

  allows(header: string | undefined): boolean {
    if (!this.auth) return true;
    const credentials = parseAuthorization(header);
    if (!credentials) return false;
    if (credentials.scheme === 'basic') {
      const basic = this.auth.basic;
      const given = decodeBasic(credentials.value);
      if (basic === undefined || given === undefined) return false;
      return (basic.username === undefined || given.user === basic.username) && given.secret === basic.password;
    }
    if (this.auth.bearerTokens?.includes(credentials.value)) return true;
    const expiresAt = this.issuedTokens.get(credentials.value);
    return expiresAt !== undefined && this.now().getTime() < expiresAt;
  }

  /** POST /oauth2/v1/token with an application/x-www-form-urlencoded body. */
  grantToken(authorizationHeader: string | undefined, body: string): TokenResponse {
    const oauth = this.auth?.oauth;
    if (!oauth) return { status: 404, body: { error: 'not_found' } };
    const form = new URLSearchParams(body);
    let clientId = form.get('client_id') ?? undefined;
    let clientSecret = form.get('client_secret') ?? undefined;
    const credentials = parseAuthorization(authorizationHeader);
    if (credentials?.scheme === 'basic') {
      const given = decodeBasic(credentials.value);
      if (given) {
        clientId = formDecode(given.user);
        clientSecret = formDecode(given.secret);
      }
    }
    if (clientId !== oauth.clientId || clientSecret !== oauth.clientSecret) {
      return { status: 401, body: { error: 'invalid_client', error_description: 'Client authentication failed.' } };
    }
    const grantType = form.get('grant_type');
    if (grantType === null) return { status: 400, body: { error: 'invalid_request', error_description: 'grant_type is required.' } };
    if (grantType !== 'client_credentials') return { status: 400, body: { error: 'unsupported_grant_type' } };
    const ttl = oauth.tokenTtlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    const token = randomBytes(24).toString('base64url');
    this.issuedTokens.set(token, this.now().getTime() + ttl * 1000);
    return { status: 200, body: { access_token: token, token_type: 'Bearer', expires_in: ttl } };
  }

  revokeTokens(): void {
    this.issuedTokens.clear();
  }
}

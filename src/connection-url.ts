/**
 * What stands for the host a socket connection string leaves empty, so that the URL standard reads
 * it: `postgres://user:pw@/db?host=/run/postgresql` has none (the socket folder is in `host=`),
 * which node-postgres (pg-connection-string) reads by putting a placeholder host in the same place.
 */
const NO_HOST = 'no-host.invalid';

/**
 * A connection string as node-postgres reads it: a URL, or one whose host is empty after its user
 * part (given NO_HOST, which urlText takes out again). Undefined when neither is a URL Node can
 * read. DATABASE_URL's check refused the socket form the README offers, and a password in it was
 * not seen as a secret in `.env`.
 */
export function parseConnectionUrl(url: string): URL | undefined {
  if (URL.canParse(url)) return new URL(url);
  const placed = url.replace('@/', `@${NO_HOST}/`);
  return placed !== url && URL.canParse(placed) ? new URL(placed) : undefined;
}

/** A URL parseConnectionUrl read, as text, with an empty host where it had one. */
export function urlText(url: URL): string {
  return url.host === NO_HOST ? url.toString().replace(`@${NO_HOST}/`, '@/') : url.toString();
}

/*
 * Whether a text from elsewhere (an error page, a network error) quotes a secret we sent: a CPQ
 * credential, an alert webhook's URL. Such a text is not shown at all, rather than shown with the
 * secret cut out: a gateway or framework may echo a request escaped (JSON's `\/`, `\u002f`),
 * URL-encoded (`Basic%20…%3D`), as HTML entities, or only in part (cut at some length), and an
 * exact match of the secret misses each of those.
 */

/** The text as it reads once JSON escapes, HTML character references and URL encoding are undone (each alone, and JSON's then URL's). */
function readings(text: string): string[] {
  const json = text.replace(/\\u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))).replace(/\\(.)/g, '$1');
  const html = text
    .replace(/&#x([0-9a-fA-F]{1,6});/g, (_, hex: string) => String.fromCodePoint(Math.min(parseInt(hex, 16), 0x10ffff)))
    .replace(/&#([0-9]{1,7});/g, (_, dec: string) => String.fromCodePoint(Math.min(parseInt(dec, 10), 0x10ffff)))
    .replace(/&(quot|amp|lt|gt|apos|sol|equals|plus);/g, (_, name: string) => ENTITIES[name]!);
  // Byte by byte, not decodeURIComponent: a malformed sequence elsewhere must not hide an encoded secret.
  const url = (t: string) => t.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return [text, json, html, url(text), url(json)];
}

const ENTITIES: Record<string, string> = { quot: '"', amp: '&', lt: '<', gt: '>', apos: "'", sol: '/', equals: '=', plus: '+' };

/**
 * Whether `text`, read plainly or with escapes undone, holds any `window` consecutive characters
 * of one of `secrets` (the whole secret when it is shorter; empty secrets are skipped). Compared
 * ignoring case: hiding a text that only looks like a secret costs an excerpt, showing one leaks it.
 */
export function quotesSecret(text: string, secrets: Iterable<string>, window: number): boolean {
  const forms = readings(text).map((t) => t.toLowerCase());
  for (const secret of secrets) {
    const s = secret.toLowerCase();
    if (s === '') continue;
    const width = Math.min(window, s.length);
    for (let i = 0; i + width <= s.length; i++) {
      const part = s.slice(i, i + width);
      if (forms.some((f) => f.includes(part))) return true;
    }
  }
  return false;
}

/*
 * Whether a text from elsewhere (an error page, a network error) quotes a secret we sent: a CPQ
 * credential, an alert webhook's URL. Such a text is not shown at all, rather than shown with the
 * secret cut out: a gateway or framework may echo a request escaped (JSON's `\/`, `\u002f`),
 * URL-encoded (`Basic%20…%3D`), as HTML entities, or only in part (cut at some length), and an
 * exact match of the secret misses each of those.
 */

/** Percent-escapes undone, as bytes read as UTF-8 (`%C3%BC` is ü); `+` is a space, as in a form. */
function urlDecoded(text: string): string {
  if (!text.includes('%') && !text.includes('+')) return text;
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '%' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(c === '+' ? ' ' : c, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

/**
 * The text as it reads once JSON escapes, HTML character references and URL encoding (once or
 * twice over) are undone, and as UTF-8 mis-read as Latin-1 (how a servlet decodes a Basic
 * header) or UTF-16 (NULs between the characters) reads once put right.
 */
function readings(text: string): string[] {
  const json = text.replace(/\\u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16))).replace(/\\(.)/g, '$1');
  const html = text
    .replace(/&#x([0-9a-fA-F]{1,6});/g, (_, hex: string) => String.fromCodePoint(Math.min(parseInt(hex, 16), 0x10ffff)))
    .replace(/&#([0-9]{1,7});/g, (_, dec: string) => String.fromCodePoint(Math.min(parseInt(dec, 10), 0x10ffff)))
    .replace(/&(quot|amp|lt|gt|apos|sol|equals|plus);/g, (_, name: string) => ENTITIES[name]!);
  const url = urlDecoded(text);
  const forms = [text, json, html, url, urlDecoded(url), urlDecoded(json), text.replaceAll('\u0000', '')];
  // Latin-1 text whose bytes are UTF-8: read again as UTF-8 (only when every character is one byte).
  if (/[\u0080-\u00ff]/.test(text) && !/[\u0100-\uffff]/.test(text)) forms.push(Buffer.from(text, 'latin1').toString('utf8'));
  return forms;
}

const ENTITIES: Record<string, string> = { quot: '"', amp: '&', lt: '<', gt: '>', apos: "'", sol: '/', equals: '=', plus: '+' };

/**
 * Whether `text`, read plainly or with escapes undone, holds any `window` consecutive characters
 * of one of `secrets`, compared ignoring case: hiding a text that only looks like a secret costs
 * an excerpt, showing one leaks it. A secret shorter than `window` counts only whole and with its
 * case (`admin` would otherwise hide every answer that names an Admin); empty ones are skipped.
 */
export function quotesSecret(text: string, secrets: Iterable<string>, window: number): boolean {
  const forms = readings(text);
  const lowerForms = forms.map((t) => t.toLowerCase());
  for (const secret of secrets) {
    if (secret === '') continue;
    if (secret.length < window) {
      if (forms.some((f) => f.includes(secret))) return true;
      continue;
    }
    const s = secret.toLowerCase();
    for (let i = 0; i + window <= s.length; i++) {
      const part = s.slice(i, i + window);
      if (lowerForms.some((f) => f.includes(part))) return true;
    }
  }
  return false;
}

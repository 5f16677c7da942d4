/*
 * Whether a text from elsewhere (an error page, a network error) quotes a secret we sent: a CPQ
 * credential, an alert webhook's URL. Such a text is not shown at all, rather than shown with the
 * secret cut out: a gateway or framework may echo a request escaped (JSON's `\/`, `\u002f`),
 * URL-encoded (`Basic%20…%3D`), as HTML entities, in hex or base64, with characters between the
 * secret's, or only in part (cut at some length), and an exact match of the secret misses each.
 * What is scanned is bounded (an excerpt's first few KiB; a message, by withoutSecrets): the search
 * holds each run of the text's characters.
 */
import { headOf } from './exact-json.js';

/** Percent-escapes undone (`%uXXXX` too), as bytes read as UTF-8 (`%C3%BC` is ü); `+` is a space, as in a form. */
function urlDecoded(text: string): string {
  if (!text.includes('%') && !text.includes('+')) return text;
  const wide = text.replace(/%u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  const bytes: number[] = [];
  for (let i = 0; i < wide.length; i++) {
    const c = wide[i]!;
    if (c === '%' && /^[0-9a-fA-F]{2}$/.test(wide.slice(i + 1, i + 3))) {
      bytes.push(parseInt(wide.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(c === '+' ? ' ' : c, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

const codePoint = (n: number) => String.fromCodePoint(Math.min(n, 0x10ffff));

/** What JSON's and JavaScript's one-letter escapes stand for: a line break, not the letter n. */
const CONTROL_ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', v: '\v' };

/**
 * Backslash escapes undone: JSON's and JavaScript's (`\u002f`, `\u{2f}`, `\x2f`, `\/`, `\n`). `\n`
 * is read as the line break it stands for: read as `n`, a short password after it seemed part of
 * a word (standsAlone), and an escaped echo of it was shown.
 */
const backslashDecoded = (text: string) =>
  text
    .replace(/\\u\{([0-9a-fA-F]{1,6})\}/g, (_, hex: string) => codePoint(parseInt(hex, 16)))
    .replace(/\\u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    .replace(/\\x([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))
    .replace(/\\(.)/g, (_, c: string) => CONTROL_ESCAPES[c] ?? c);

const ENTITIES: Record<string, string> = { quot: '"', amp: '&', lt: '<', gt: '>', apos: "'", sol: '/', equals: '=', plus: '+', colon: ':', nbsp: ' ' };

/** HTML character references undone (`&#x2F;`, `&#X2F`, `&#47;`, `&sol;`; the `;` may be left out). */
const htmlDecoded = (text: string) =>
  text
    .replace(/&#[xX]([0-9a-fA-F]{1,8});?/g, (_, hex: string) => codePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]{1,10});?/g, (_, dec: string) => codePoint(parseInt(dec, 10)))
    .replace(/&(quot|amp|lt|gt|apos|sol|equals|plus|colon|nbsp);/gi, (_, name: string) => ENTITIES[name.toLowerCase()]!);

/**
 * The text as it reads once escapes are undone: backslash, HTML and URL escapes, each alone and
 * in turn (twice over), UTF-8 mis-read as Latin-1 (how a servlet decodes a Basic header) or as
 * UTF-16 (NULs between the characters) put right.
 */
function readings(text: string): string[] {
  const decodeAll = (t: string) => urlDecoded(htmlDecoded(backslashDecoded(t)));
  const once = decodeAll(text);
  const forms = [text, backslashDecoded(text), htmlDecoded(text), urlDecoded(text), once, decodeAll(once), text.replaceAll('\u0000', '')];
  // Latin-1 text whose bytes are UTF-8: read again as UTF-8 (only when every character is one byte).
  if (/[\u0080-\u00ff]/.test(text) && !/[\u0100-\uffff]/.test(text)) forms.push(Buffer.from(text, 'latin1').toString('utf8'));
  return forms;
}

/** Letters and digits only, compatibility forms folded (full-width ｐ is p), lower case: what survives spaces, zero-width characters and tags put between a secret's characters. */
const skeleton = (text: string) =>
  text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, '');

/** A secret in the encodings an echo may carry it in besides its text: hex, and base64 at each of the three alignments it can start at. */
function encodedForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = [bytes.toString('hex')];
  for (let pad = 0; pad < 3; pad++) {
    // The characters that encode a byte before the secret's are left out: they are not the secret's.
    const encoded = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
    forms.push(encoded.slice(pad === 0 ? 0 : 4).replace(/=+$/, ''));
  }
  return forms;
}

/**
 * Whether `text`, read plainly or with escapes undone, holds any `window` consecutive letters and
 * digits of one of `secrets` (or of its hex or base64), ignoring case, compatibility forms and
 * whatever else stands between them: hiding a text that only looks like a secret costs an
 * excerpt, showing one leaks it. A secret with fewer than `window` letters and digits counts only
 * whole, with its case, and standing alone (standsAlone), as do its hex and base64 of 6 characters
 * or more: `admin` would otherwise hide every answer that names an Admin, and a one-letter
 * password nearly every error (review DY). Empty ones are skipped.
 */
export function quotesSecret(text: string, secrets: Iterable<string>, window: number): boolean {
  const forms = readings(text);
  // Every run of `window` letters and digits the text holds, in any reading: each of a secret's is then one lookup.
  const runs = new Set<string>();
  for (const form of forms) {
    const s = skeleton(form);
    for (let i = 0; i + window <= s.length; i++) runs.add(s.slice(i, i + window));
  }
  for (const secret of secrets) {
    if (secret === '') continue;
    // Too short to have a run of its own (or mostly punctuation): it counts whole, with its case,
    // standing alone; so do its hex and base64 long enough not to be a number or word by chance
    // (`Xk3!` as `WGszIQ==`: review HM).
    if (skeleton(secret).length < window) {
      const whole = [
        secret,
        ...encodedForms(secret)
          .flatMap((f) => (/^[0-9a-f]+$/.test(f) ? [f, f.toUpperCase()] : [f]))
          .filter((f) => f.length >= 6),
      ];
      if (forms.some((f) => whole.some((w) => standsAlone(f, w)))) return true;
      continue;
    }
    for (const form of [secret, ...encodedForms(secret)]) {
      const s = skeleton(form);
      for (let i = 0; i + window <= s.length; i++) if (runs.has(s.slice(i, i + window))) return true;
    }
  }
  return false;
}

/**
 * The labels of a host name that look like keys: some webhook services carry their secret there
 * (Pipedream: `<id>.m.pipedream.net`), and a 404 naming the host quoted it (review IM). A label
 * but the last two (the domain the service owns; its subdomains are where an id goes) counts when
 * it holds letters and digits, both, 6 or more, as a path segment does (but a cloud region's name),
 * or, the first label, 12 or more letters and digits of any kind (a random id may lack a digit by
 * chance; a word that long hides an answer naming it, which costs an excerpt). Shorter words
 * (`hooks` of `hooks.slack.com`) are left out: standing alone in an answer, they would hide it for
 * nothing. An IP address has none.
 */
export function hostKeyLabels(hostname: string): string[] {
  if (hostname.startsWith('[') || /^[0-9.]+$/.test(hostname)) return [];
  const labels = hostname.replace(/\.$/, '').split('.');
  return labels.slice(0, -2).filter((label, at) => {
    // A cloud's region (AWS's us-east-1 of an API gateway's host) is no key, and an answer naming
    // one (an ARN in a Lambda's error) was hidden for it (review IT).
    if (/^[a-z]{2}(-[a-z]+)+-\d+$/i.test(label)) return false;
    const alnum = label.match(/[A-Za-z0-9]/g)?.length ?? 0;
    // Long words of letters alone count in the first label only, where an id goes: further in they
    // are a service's words (Azure's northcentralus of logic.azure.com).
    return (at === 0 && alnum >= 12) || (alnum >= 6 && /[0-9]/.test(label) && /[A-Za-z]/.test(label));
  });
}

/** The host name with its labels that look like keys (hostKeyLabels) shown as `…`: what a message may name of a webhook. */
export function hostWithoutKeys(hostname: string): string {
  const keys = new Set(hostKeyLabels(hostname));
  return hostname
    .split('.')
    .map((label) => (keys.has(label) ? '…' : label))
    .join('.');
}

const LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

/**
 * Whether `text` holds `secret` not as part of a longer run of letters and digits: where the
 * secret begins (ends) with a letter or digit, the character before (after) it is none. An echo
 * sets a credential apart (`u:pw`, `"pw"`, `Basic dTp4`); a word that holds it does not quote it.
 */
function standsAlone(text: string, secret: string): boolean {
  const joinsBefore = LETTER_OR_DIGIT.test(secret.slice(0, 1));
  const joinsAfter = LETTER_OR_DIGIT.test(secret.slice(-1));
  for (let at = text.indexOf(secret); at !== -1; at = text.indexOf(secret, at + 1)) {
    const before = text.slice(Math.max(0, at - 1), at);
    const after = text.slice(at + secret.length, at + secret.length + 1);
    if (!(joinsBefore && LETTER_OR_DIGIT.test(before)) && !(joinsAfter && LETTER_OR_DIGIT.test(after))) return true;
  }
  return false;
}

/**
 * The most of a message withoutSecrets gives back (it searches a little further: reachPastCut): far
 * more than any message of ours with its quotes of CPQ's words (a few hundred characters; a list of
 * lock holders, of failed sites).
 */
export const MESSAGE_MAX_CHARS = 16_384;

/**
 * `message`, cut to MESSAGE_MAX_CHARS. A message quotes names CPQ sent (a company login, in a URL
 * too), which may be as long as a page: one of 4 million characters was searched whole (quotesSecret
 * holds each run of `window` characters: ~60 bytes of heap a character), and the image's 192 MB heap
 * ran out; the rest would have gone to stderr, the logs and the run's record (review HS).
 */
function boundedMessage(message: string): string {
  if (message.length <= MESSAGE_MAX_CHARS) return message;
  return `${headOf(message, MESSAGE_MAX_CHARS)}… (${message.length - MESSAGE_MAX_CHARS} more characters not shown)`;
}

/**
 * How far past the cut a secret written in its longest form reaches: a character escaped as
 * `&#x10FFFF;` (10) for each byte of the secret, and a window more. What is searched goes that far
 * past what is shown: a secret across the cut, shown in part, was searched only in the part left
 * before it, too short to be found (review HY).
 */
const reachPastCut = (secrets: readonly string[], window: number) => Math.max(0, ...secrets.map((s) => Buffer.byteLength(s, 'utf8') * 10)) + window;

/** The URLs a message names: from the scheme to a space or a quote. */
const URLS = /\bhttps?:\/\/[^\s"'<>]+/gi;

/**
 * A message of ours (a failed run's, a network error's) that may quote secrets through CPQ's words
 * in it: `hidden` when it quotes one in any form quotesSecret reads, else the message as it is. A
 * secret with fewer than `window` letters and digits (`p`, `1000`) is not looked for in the URLs
 * `asked` tells are the requests we made: those are built of the settings and of names, and `1000`
 * (in `limit=1000`) hid every error of a run. Any other URL is searched as the rest of the text: a
 * URL CPQ sent (a field's value a record's error quotes) is CPQ's words, and with every URL skipped
 * a short password a gateway put in one (`https://gw.example/echo?auth=Pw!1xyz`) was shown (review
 * IM). Nothing is cut out of a message: cut out of words, `p` made every URL `htt[redacted]://`
 * (review HK), and cut out of our own wording (`GET`) a short secret would be read from the gap.
 */
export function withoutSecrets(whole: string, secrets: Iterable<string>, window: number, hidden: string, asked: (url: string) => boolean): string {
  const long: string[] = [];
  const short: string[] = [];
  for (const secret of secrets) if (secret !== '') (skeleton(secret).length < window ? short : long).push(secret);
  const searched = headOf(whole, MESSAGE_MAX_CHARS + reachPastCut([...long, ...short], window));
  if (quotesSecret(searched, long, window)) return hidden;
  if (
    short.length > 0 &&
    quotesSecret(
      searched.replace(URLS, (url) => (asked(url) ? ' ' : url)),
      short,
      window,
    )
  )
    return hidden;
  return boundedMessage(whole);
}

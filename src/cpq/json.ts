import { LosslessNumber, isLosslessNumber, isSafeNumber, parse, stringify } from 'lossless-json';

export { LosslessNumber, isLosslessNumber };

/** Numbers that survive a double keep the fast path; the rest (int64 ids above 2^53) stay as their digits. */
function parseNumber(text: string): number | LosslessNumber {
  return isSafeNumber(text) ? Number(text) : new LosslessNumber(text);
}

/** JSON.parse that keeps every number digit for digit. Throws SyntaxError on bad JSON. */
export function parseExactJson(text: string): unknown {
  return parse(text, null, parseNumber);
}

/** JSON.stringify that writes LosslessNumber values back as the digits they were read as. */
export function stringifyExactJson(value: unknown): string {
  return stringify(value) ?? 'null';
}

/** The decimal digits of an integer value read by parseExactJson, or undefined when it is not an integer. */
export function integerText(value: unknown): string | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
  if (isLosslessNumber(value)) return /^-?\d+$/.test(value.value) ? value.value : undefined;
  if (typeof value === 'string' && /^-?\d+$/.test(value.trim())) return value.trim();
  return undefined;
}

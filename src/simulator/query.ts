import { isLosslessNumber, type LosslessNumber } from 'lossless-json';

/*
 * Oracle CPQ "Manage Collections" query parameters: q (MongoDB-style filter, filter.ts), orderby
 * (orderby.ts), fields. This module holds what they share: the error they answer 400 with, and how
 * a value is reached and compared.
 */

export class QueryError extends Error {}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) && !isLosslessNumber(value);
}

/**
 * Values at a dotted path. Arrays met on the way are traversed (any element may match),
 * as MongoDB does, so "groups.items.variableName" reaches every group of a user.
 */
export function valuesAtPath(root: unknown, path: readonly string[]): unknown[] {
  let current: unknown[] = [root];
  for (const segment of path) {
    const next: unknown[] = [];
    for (const value of current) {
      if (Array.isArray(value)) {
        for (const element of value) {
          if (isPlainObject(element) && element[segment] !== undefined) next.push(element[segment]);
        }
      } else if (isPlainObject(value) && value[segment] !== undefined) {
        next.push(value[segment]);
      }
    }
    if (next.length === 0) return next;
    current = next;
  }
  const expanded: unknown[] = [];
  for (const value of current) {
    expanded.push(value);
    if (Array.isArray(value)) expanded.push(...(value as unknown[]));
  }
  return expanded;
}

export type Numeric = number | bigint | LosslessNumber;

export function isNumeric(value: unknown): value is Numeric {
  return typeof value === 'number' || typeof value === 'bigint' || isLosslessNumber(value);
}

/** number when exact, bigint for integers beyond 2^53 (JS compares number and bigint exactly). */
export function numericKey(value: Numeric): number | bigint {
  if (typeof value !== 'object') return value;
  const text = value.toString();
  if (/^-?\d+$/.test(text)) {
    const asNumber = Number(text);
    return Number.isSafeInteger(asNumber) ? asNumber : BigInt(text);
  }
  return Number(text);
}

/** "a,b" -> set of top-level field names; undefined when absent. */
export function parseFieldList(raw: string | null): Set<string> | undefined {
  if (raw === null) return undefined;
  const names = raw
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '');
  return names.length > 0 ? new Set(names) : undefined;
}

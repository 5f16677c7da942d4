import { LosslessNumber, MAX_RECORD_VALUES, shownName } from '../exact-json.js';
import { CPQ_USER_FIELDS, canonicalFieldName, fieldNameKey, isChoice, type FieldKind } from './user-fields.js';

/*
 * Export columns -> user record: how a row of a CSV export becomes the same kind of record a JSON
 * response holds, so both go through normalizeUser. Column names are the JSON field names
 * (case-insensitive, the aliases of user-fields.ts apply), nested objects are dotted columns
 * (`status.value`, `status.displayValue`, `company.loginName`) and `groups` holds the group
 * variable names separated by `;`. Correct this file when a real export is seen.
 *
 * Values are typed by the field they fill, so a CSV record carries what a JSON one would:
 * booleans for flag fields, numbers for int64 ids and numeric choice values (exact above 2^53,
 * as on the JSON path). An empty cell means "no value": the field is left out, except for the
 * plain text fields, where CPQ's JSON sends "" and so does an empty cell. Unknown columns are
 * kept as text (they land in `raw`, like unknown JSON fields). A value that does not fit its
 * field (`yes` for a flag) is kept as text so normalizeUser reports it with the user's name.
 */

/** The header cannot be read as user fields; the message names the column. */
export class ExportColumnsError extends Error {
  override name = 'ExportColumnsError';
}

type Leaf = 'plainText' | 'text' | 'boolean' | 'integer' | 'timestamp' | 'groupList';

interface Column {
  /** Object keys leading to the leaf, as spelled by the first column that named them. */
  parents: string[];
  key: string;
  leaf: Leaf;
}

export interface ExportColumns {
  readonly count: number;
  /** One user record from one row (exactly `count` cells). */
  record(cells: readonly string[]): Record<string, unknown>;
}

/**
 * Names that reach JavaScript's prototype chain. Records are built without a prototype, so such a
 * key could not climb it; they are refused anyway (in any case), as no CPQ field is named so and a
 * header naming one is an attack or a broken export.
 */
const PROTOTYPE_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Bounds on a header and a groups cell, as a JSON record is bounded in values (MAX_RECORD_VALUES):
 * a user has about 80 fields and a few custom ones, nested a level or two (`status.value`), and
 * is in tens of groups. Unbounded, one header of a million columns, or of one column of half a
 * million dotted parts, or one cell of 2.5 million group names filled the image's 192 MB heap.
 */
const MAX_EXPORT_COLUMNS = 2_000;
const MAX_DOTTED_PARTS = 16;

/** A record object: no prototype, so no key (`constructor`, `toString`...) is inherited or climbs to Object.prototype. */
const withoutPrototype = (): Record<string, unknown> => Object.create(null) as Record<string, unknown>;

const KIND_OF = new Map<string, FieldKind>(Object.entries(CPQ_USER_FIELDS));
/** Relationships that a CSV cell cannot express beyond what is documented (groups as a list). */
const NOT_IN_CSV = new Set(['accessPermissions', 'links', 'items']);

const LEAF_OF_KIND: Record<FieldKind, Leaf> = {
  text: 'plainText',
  boolean: 'boolean',
  bigint: 'integer',
  timestamp: 'timestamp',
  choiceText: 'text',
  choiceInt: 'integer',
};

function leafOf(name: string, path: string[]): Leaf {
  const top = canonicalFieldName(path[0]!);
  if (top !== undefined && NOT_IN_CSV.has(top)) {
    throw new ExportColumnsError(`column "${shownName(name)}": ${top} cannot be given in a CSV export (groups can, as one ;-separated column)`);
  }
  if (top === 'groups') {
    if (path.length > 1) throw new ExportColumnsError(`column "${shownName(name)}": groups are one column named groups holding ;-separated variable names`);
    return 'groupList';
  }
  const kind = top === undefined ? undefined : KIND_OF.get(top);
  if (path.length === 1) {
    if (top === 'login') return 'plainText';
    return kind ? LEAF_OF_KIND[kind] : 'text';
  }
  if (isChoice(kind)) {
    const part = canonicalFieldName(path[1]!);
    return path.length === 2 && part === 'value' ? LEAF_OF_KIND[kind] : 'text';
  }
  if (kind !== undefined || top === 'login')
    throw new ExportColumnsError(`column "${shownName(name)}": ${top} is not an object, so it has no "${shownName(path.slice(1).join('.'))}"`);
  return 'text';
}

function convert(leaf: Leaf, cell: string): unknown {
  switch (leaf) {
    case 'plainText':
      return cell;
    case 'text':
    case 'timestamp':
      return cell === '' ? undefined : cell;
    case 'boolean': {
      const t = cell.trim().toLowerCase();
      return t === '' ? undefined : t === 'true' ? true : t === 'false' ? false : cell;
    }
    case 'integer': {
      const t = cell.trim();
      if (t === '') return undefined;
      if (!/^-?(0|[1-9]\d*)$/.test(t)) return cell;
      const n = Number(t);
      return Number.isSafeInteger(n) ? n : new LosslessNumber(t);
    }
    case 'groupList': {
      // Counted before the cell is split: one name per ';' at most.
      let separators = 0;
      for (let at = cell.indexOf(';'); at >= 0; at = cell.indexOf(';', at + 1)) {
        if (++separators >= MAX_RECORD_VALUES) throw new ExportColumnsError(`groups: more than ${MAX_RECORD_VALUES} names; refused as too complex`);
      }
      const names = cell
        .split(';')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      return { items: names.map((variableName) => ({ variableName })) };
    }
  }
}

interface Node {
  /** The spelling used as the object key. */
  key: string;
  column: string;
  children: Map<string, Node> | undefined;
}

/** Reads a header row; throws ExportColumnsError for a column that cannot be mapped. */
export function exportColumns(header: readonly string[]): ExportColumns {
  if (header.length > MAX_EXPORT_COLUMNS) throw new ExportColumnsError(`${header.length} columns, more than ${MAX_EXPORT_COLUMNS}; refused`);
  const roots = new Map<string, Node>();
  const columns: Column[] = header.map((raw, index) => {
    const name = raw.trim();
    if (name === '') throw new ExportColumnsError(`column ${index + 1} has no name`);
    const path = name.split('.', MAX_DOTTED_PARTS + 1);
    if (path.length > MAX_DOTTED_PARTS) throw new ExportColumnsError(`column "${shownName(name)}" nests more than ${MAX_DOTTED_PARTS} levels deep; refused`);
    if (path.some((p) => p === '')) throw new ExportColumnsError(`column "${shownName(name)}" has an empty part in its dotted name`);
    const unsafe = path.find((p) => PROTOTYPE_NAMES.has(p.toLowerCase()));
    if (unsafe !== undefined)
      throw new ExportColumnsError(`column "${shownName(name)}": "${unsafe}" is not accepted as a field name (it names JavaScript's prototype chain)`);
    const leaf = leafOf(name, path);
    // Objects are grouped in any ASCII case (Status.value + status.displayValue is one object), as keys are read (fieldNameKey),
    // and a name may not both hold a value and be an object.
    let level = roots;
    const parents: string[] = [];
    path.forEach((part, depth) => {
      const last = depth === path.length - 1;
      const lower = fieldNameKey(part);
      const existing = level.get(lower);
      if (existing) {
        if (last || existing.children === undefined) {
          throw new ExportColumnsError(
            fieldNameKey(existing.column) === fieldNameKey(name)
              ? `columns "${shownName(existing.column)}" and "${shownName(name)}" name the same field`
              : `columns "${shownName(existing.column)}" and "${shownName(name)}" conflict: one is inside the other`,
          );
        }
        parents.push(existing.key);
        level = existing.children;
        return;
      }
      const node: Node = { key: part, column: name, children: last ? undefined : new Map() };
      level.set(lower, node);
      if (!last) {
        parents.push(part);
        level = node.children!;
      }
    });
    return { parents, key: path[path.length - 1]!, leaf };
  });

  return {
    count: columns.length,
    record(cells) {
      const out = withoutPrototype();
      for (let i = 0; i < columns.length; i++) {
        const column = columns[i]!;
        const value = convert(column.leaf, cells[i] ?? '');
        if (value === undefined) continue;
        let target = out;
        for (const key of column.parents) target = (target[key] ??= withoutPrototype()) as Record<string, unknown>;
        target[column.key] = value;
      }
      return out;
    },
  };
}

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/*
 * Data flows one way: cpq (HTTP, paging, zip, the CPQ record and its spellings) -> normalize (our
 * rows) -> sync -> db. A module may use the layers before it and the neutral modules at the top of
 * src (exact-json, errors, config, logger), never one after it: that is what lets a newcomer tell
 * where "the CPQ record" ends and "our rows" begin. Read from the source text, so a type-only
 * import counts too.
 */

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src');

/** Folders of src that a module of each layer must not import from. */
const FORBIDDEN: Record<string, string[]> = {
  cpq: ['normalize', 'sync', 'db', 'worker', 'history', 'simulator'],
  normalize: ['sync', 'db', 'worker', 'history', 'simulator'],
  // sync calls the database operations of db; db knows the rows (normalize), never the run.
  db: ['sync', 'worker', 'history', 'simulator'],
  // A run calls alerts (after its merge, after its commit); alerts work on the database only.
  alerts: ['cpq', 'normalize', 'sync', 'worker', 'history', 'simulator'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The src folder (first path part under src/) of every relative module a file imports or re-exports. */
export function importedFolders(file: string, text: string): { specifier: string; folder: string }[] {
  const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)'(\.[^']*)'/g)].map((m) => m[1]!);
  return specifiers.map((specifier) => {
    const target = relative(SRC, resolve(dirname(file), specifier));
    return { specifier, folder: target.includes('/') ? target.split('/')[0]! : '(src)' };
  });
}

describe('layers', () => {
  it('reads the imports it guards (the check itself can fail)', () => {
    const file = join(SRC, 'cpq', 'example.ts');
    const text = `import { a } from '../normalize/user-fields.js';\nexport { b } from '../sync/run.js';\nimport type { C } from '../db/schema.js';\nconst d = await import('../history/export.js');\nimport { e } from './paging.js';`;
    expect(importedFolders(file, text).map((i) => i.folder)).toEqual(['normalize', 'sync', 'db', 'history', 'cpq']);
  });

  for (const [layer, forbidden] of Object.entries(FORBIDDEN)) {
    it(`src/${layer} imports nothing from ${forbidden.map((f) => `src/${f}`).join(', ')}`, () => {
      const files = sourceFiles(join(SRC, layer));
      expect(files.length, `source files in src/${layer}`).toBeGreaterThan(2);
      const wrong = files.flatMap((file) =>
        importedFolders(file, readFileSync(file, 'utf8'))
          .filter((i) => forbidden.includes(i.folder))
          .map((i) => `${relative(SRC, file)} imports ${i.specifier}`),
      );
      expect(wrong).toEqual([]);
    });
  }
});

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExactJson, stringifyExactJson } from '../src/exact-json.js';
import { RawJson, type CpqSimulator, type ZipExportOptions } from '../src/simulator/index.js';
import { python3, ZipTestBed } from './helpers/zip.js';

/*
 * The simulator's zip export, checked from outside: Python's zipfile (an independent reader that
 * verifies every CRC) reads what the simulator writes, and finds the broken variants broken.
 */

const INSPECT = `
import json, sys, zipfile
try:
    z = zipfile.ZipFile(sys.argv[1])
    bad = z.testzip()
    print(json.dumps({"entries": [[i.filename, i.file_size, i.compress_type, bool(i.flag_bits & 8)] for i in z.infolist()], "bad": bad}))
except Exception as e:
    print(json.dumps({"error": type(e).__name__ + ": " + str(e)}))
`;

interface Inspection {
  entries?: [string, number, number, boolean][];
  bad?: string | null;
  error?: string;
}

async function inspect(file: string): Promise<Inspection> {
  return JSON.parse((await python3(['-c', INSPECT, file])).toString()) as Inspection;
}

async function readEntry(file: string, name: string): Promise<string> {
  return (await python3(['-c', 'import sys,zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))', file, name])).toString('utf8');
}

const bed = new ZipTestBed();
let sim: CpqSimulator;
beforeAll(async () => {
  sim = await bed.simulator({ partnerCompanies: 1, usersPerCompany: 40, integrationUsers: 2, zipExport: {} });
});
afterAll(() => bed.close());

async function exportOf(options: ZipExportOptions, company = '_host'): Promise<string> {
  return bed.fetchExport(sim, company, options);
}

describe('simulator zip export', () => {
  it('is sent chunked as application/zip, built while it is sent', async () => {
    sim.setZipExport({});
    const response = await fetch(`${sim.baseUrl}/rest/v16/companies/partner1/users`, { headers: { accept: 'application/zip' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/zip');
    expect(response.headers.get('transfer-encoding')).toBe('chunked');
    expect(response.headers.get('content-length')).toBeNull();
    await response.arrayBuffer();
  });

  it('holds the users of the JSON collection (groups and permissions expanded, same drift) in login order', async () => {
    const file = await exportOf({ entries: [{ format: 'json' }, { format: 'jsonl' }] });
    const collection = parseExactJson(
      await (await fetch(`${sim.baseUrl}/rest/v16/companies/_host/users?expand=groups,accessPermissions&orderby=login:asc&limit=1000`)).text(),
    ) as { items: unknown[] };
    const first = (parseExactJson(await readEntry(file, 'users-1.json')) as { items: unknown[] }).items;
    const second = (await readEntry(file, 'users-2.jsonl'))
      .trimEnd()
      .split('\n')
      .map((line) => parseExactJson(line));
    expect([...first, ...second].map((u) => stringifyExactJson(u))).toEqual(collection.items.map((u) => stringifyExactJson(u)));
    expect(collection.items).toHaveLength(42);
    const text = (await readEntry(file, 'users-1.json')) + (await readEntry(file, 'users-2.jsonl'));
    expect(text).toContain('"lastname"');
  });

  it('writes CSV with a header of JSON field names, dotted objects and ;-separated groups', async () => {
    const file = await exportOf({ entries: [{ format: 'csv' }] });
    const [header, row] = (await readEntry(file, 'users.csv')).split('\r\n');
    expect(header).toMatch(/^login,/);
    expect(header!.split(',')).toEqual(expect.arrayContaining(['lastname', 'EMAIL', 'status.value', 'status.displayValue', 'TimeZone.Value', 'groups']));
    const user = sim.users('_host')[0]!;
    expect(row).toMatch(new RegExp(`^${String(user.login)},`));
    const groups = ((user.groups as { items?: { variableName: string }[] }).items ?? []).map((g) => g.variableName).join(';');
    expect(row).toContain(groups);
  });

  it('writes an exact number literal (RawJson) as one CSV cell, as written, not as an object of dotted columns', async () => {
    sim.addUser(
      'partner1',
      { login: 'zz-exact', id: new RawJson('3024590297.0'), status: { value: new RawJson('1E0'), displayValue: 'Active' } },
      { exact: true },
    );
    try {
      const file = await exportOf({ entries: [{ format: 'csv' }] }, 'partner1');
      const lines = (await readEntry(file, 'users.csv')).split('\r\n');
      const header = lines[0]!.split(',');
      const row = lines.find((line) => line.startsWith('zz-exact,'))!.split(',');
      expect(header.filter((column) => column.endsWith('.text'))).toEqual([]);
      expect(row[header.indexOf('id')]).toBe('3024590297.0');
      expect(row[header.indexOf('status.value')]).toBe('1E0');
    } finally {
      sim.deleteUser('partner1', 'zz-exact');
    }
  });

  const valid: [string, ZipExportOptions, [string, number][]][] = [
    ['deflate', {}, [['users.json', 8]]],
    ['stored', { compression: 'store' }, [['users.json', 0]]],
    [
      'zip64, a folder, several formats',
      { zip64: true, folder: 'export', entries: [{ format: 'json-array' }, { format: 'jsonl' }, { format: 'csv', name: 'ünïcode.csv' }] },
      [
        ['export/', 0],
        ['export/users-1.json', 8],
        ['export/users-2.jsonl', 8],
        ['export/ünïcode.csv', 8],
      ],
    ],
  ];
  it.each(valid)('Python reads the %s archive and every CRC matches', async (_name, options, entries) => {
    const found = await inspect(await exportOf(options));
    expect(found.error).toBeUndefined();
    expect(found.bad).toBeNull();
    expect(found.entries!.map(([name, , method]) => [name, method])).toEqual(entries);
    expect(found.entries!.filter(([name]) => !name.endsWith('/')).every(([, size, , descriptor]) => size > 0 && descriptor)).toBe(true);
  });

  const broken: [ZipExportOptions['fault'], RegExp | ((found: Inspection) => void)][] = [
    ['truncated', /BadZipFile/],
    ['bad-crc', (found) => expect(found.bad).toBe('users.json')],
    ['corrupt-data', /error|Error/],
    ['encrypted', (found) => expect(found.error ?? '').toMatch(/encrypted|password/i)],
    ['too-many-entries', (found) => expect(found.entries!.length).toBe(1002)],
  ];
  it.each(broken)('Python sees the %s variant as the tests mean it', async (fault, check) => {
    const found = await inspect(await exportOf({ fault }));
    if (check instanceof RegExp) expect(found.error ?? String(found.bad)).toMatch(check);
    else check(found);
  });

  it('serves an archive file made elsewhere as is', async () => {
    const file = join(await bed.tempDir(), 'given.zip');
    await writeFile(file, Buffer.from('PK\u0005\u0006'.padEnd(22, '\u0000'), 'latin1'));
    const served = await exportOf({ archiveFile: file });
    expect(await inspect(served)).toEqual({ entries: [], bad: null });
  });
});

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SyncError } from '../src/errors.js';
import type { CpqSimulator, SimulatorOptions, ZipExportOptions } from '../src/simulator/index.js';
import type { TestDatabase } from './helpers/database.js';
import { ZipTestBed, databaseContents, filesIn, python3, pythonZip } from './helpers/zip.js';
import { hostileSite, zipExport } from './security/cpq-hostile.js';

let bed = new ZipTestBed();
afterEach(async () => {
  await bed.close();
  bed = new ZipTestBed();
});

type Raw = Record<string, unknown>;
const ZIP = { CPQ_EXPORT_FORMAT: 'zip' };

/** Syncs the same simulator once through the JSON path and once through the zip path, into two databases. */
async function jsonAndZip(sim: Awaited<ReturnType<ZipTestBed['simulator']>>, env: Record<string, string> = {}) {
  const jsonDb = await bed.database();
  const zipDb = await bed.database();
  const json = await bed.sync(sim, jsonDb, env);
  const zip = await bed.run(sim, zipDb, { ...env, ...ZIP });
  if (zip.error) throw zip.error;
  return { json, zip: zip.result!, jsonDb, zipDb, tmp: zip.tmp };
}

function expectSameTables(a: Record<string, string[]>, b: Record<string, string[]>) {
  expect(Object.keys(b)).toEqual(Object.keys(a));
  for (const table of Object.keys(a)) expect(b[table], `table cpq.${table}`).toEqual(a[table]);
}

/**
 * One simulator synced through the JSON path into one database (the baseline), and through the
 * zip path into a fresh database per case: the same records, links included, for every case.
 */
function sharedSite(site: SimulatorOptions, env: Record<string, string> = {}) {
  const shared = new ZipTestBed();
  const state = {} as { sim: CpqSimulator; jsonDb: TestDatabase; json: Awaited<ReturnType<ZipTestBed['sync']>>; contents: Record<string, string[]> };
  beforeAll(async () => {
    state.sim = await shared.simulator(site);
    state.jsonDb = await shared.database();
    state.json = await shared.sync(state.sim, state.jsonDb, env);
    state.contents = await databaseContents(state.jsonDb);
  });
  afterAll(() => shared.close());
  return state;
}

describe('zip export: the same database as the JSON path', () => {
  const site: SimulatorOptions = { pathPrefix: '/cpq', partnerCompanies: 1, usersPerCompany: 60, integrationUsers: 3, zipExport: {} };
  const env = { CPQ_COMPANIES: '_host,partner1', CPQ_PAGE_SIZE: '7' };
  const base = sharedSite(site, env);
  const variants: [string, ZipExportOptions][] = [
    ['one .json collection body, deflated', {}],
    ['one .json array, stored', { entries: [{ format: 'json-array' }], compression: 'store' }],
    [
      '.jsonl and .ndjson entries in a folder, zip64',
      { entries: [{ format: 'jsonl' }, { format: 'jsonl', name: 'more.ndjson' }, { format: 'json' }], folder: 'export', zip64: true },
    ],
  ];

  it.each(variants)('%s: every table identical, table by table', async (_name, zipExport) => {
    const { sim, json } = base;
    sim.setZipExport(zipExport);
    sim.requests.length = 0;
    const zipDb = await bed.database();
    const { result: zip, error, tmp } = await bed.run(sim, zipDb, { ...env, ...ZIP });
    if (error) throw error;
    expect(zip).toMatchObject({ status: 'succeeded', inserted: json.inserted, seen: json.seen });
    expect(json.inserted).toBe(60 + 3 + 60); // integration users are host users on top of usersPerCompany
    const zipStreams = zip!.streams.filter((s) => s.stream.startsWith('companies/'));
    expect(zipStreams.map((s) => [s.stream, s.received, s.pages]).sort()).toEqual([
      ['companies/_host', 63, 9],
      ['companies/partner1', 60, 9],
    ]);
    expectSameTables(base.contents, await databaseContents(zipDb));
    const zipRequests = sim.requests.filter((r) => r.path.endsWith('/users') && Object.keys(r.query).length === 0);
    expect(zipRequests.map((r) => [r.path, r.status]).sort()).toEqual([
      ['/cpq/rest/v16/companies/_host/users', 200],
      ['/cpq/rest/v16/companies/partner1/users', 200],
    ]);
    expect(await filesIn(tmp)).toEqual([]);
  });

  it('a company without users: every entry format reads as no users', async () => {
    const sim = await bed.simulator({
      partnerCompanies: 0,
      usersPerCompany: 0,
      integrationUsers: 0,
      zipExport: { entries: [{ format: 'json' }, { format: 'json-array' }, { format: 'jsonl' }, { format: 'csv' }] },
    });
    const result = await bed.sync(sim, await bed.database(), ZIP);
    expect(result).toMatchObject({ status: 'succeeded', seen: 0, pages: 0 });
  });

  it('a zip run after a JSON run of the same data changes nothing (every user unchanged)', async () => {
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 40, integrationUsers: 2, zipExport: { entries: [{ format: 'jsonl' }] } });
    const t = await bed.database();
    await bed.sync(sim, t);
    const before = await databaseContents(t);
    const second = await bed.sync(sim, t, ZIP);
    expect(second).toMatchObject({ inserted: 0, updated: 0, unchanged: 42 });
    expectSameTables(before, await databaseContents(t));
  });

  it('a full zip read, which sends no totalResults, marks the users its export no longer holds deleted: only a keyset read needs the count (review EK)', async () => {
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 10, integrationUsers: 0, zipExport: { entries: [{ format: 'jsonl' }] } });
    const t = await bed.database();
    await bed.sync(sim, t, ZIP);
    const whole = await bed.run(sim, t, ZIP, { full: true });
    expect(whole.result!.streams.find((s) => s.stream === 'companies/_host')).toMatchObject({ deletion: 'applied: none missing' });
    const gone = String(sim.users('_host')[3]!['login']);
    sim.deleteUser('_host', gone);
    const { result, error } = await bed.run(sim, t, ZIP, { full: true });
    expect(error).toBeUndefined();
    expect(result!.streams.find((s) => s.stream === 'companies/_host')).toMatchObject({ mode: 'full', totalResults: null, deletion: 'applied: 1 deleted' });
    expect(result!.deleted).toBe(1);
    expect(await t.query(`SELECT login FROM cpq.users WHERE deleted_at IS NOT NULL`)).toEqual([{ login: gone }]);
  });

  it('.csv: the same typed columns and memberships; what CSV cannot carry is stated and checked', async () => {
    // No integration users: their sparse records would show CSV's one blind spot for text fields
    // (an empty cell is "", never "absent"), covered in the last assertion below.
    const sim = await bed.simulator({
      partnerCompanies: 0,
      usersPerCompany: 80,
      integrationUsers: 0,
      zipExport: { entries: [{ format: 'csv' }, { format: 'csv' }] },
    });
    const { zip, jsonDb, zipDb } = await jsonAndZip(sim);
    expect(zip.inserted).toBe(80);
    const [json, csv] = [await databaseContents(jsonDb), await databaseContents(zipDb)];
    const without = (rows: string[], ...columns: string[]) =>
      rows
        .map((row) => {
          const record = JSON.parse(row) as Raw;
          // eslint-disable-next-line @typescript-eslint/no-dynamic-delete -- dropping the named columns is the point
          for (const c of columns) delete record[c];
          return JSON.stringify(record);
        })
        .sort();
    // Every typed column, drift absorbed (the CSV header spells lastname, EMAIL, isSuperUserPermEnabled, TimeZone.Value).
    expect(without(csv.users!, 'raw', 'content_hash')).toEqual(without(json.users!, 'raw', 'content_hash'));
    expect(csv.user_groups).toEqual(json.user_groups);
    expect(csv.sync_state).toEqual(json.sync_state);
    // Groups are variable names only in CSV: no label or type.
    expect(without(csv.groups!, 'label', 'type')).toEqual(without(json.groups!, 'label', 'type'));
    expect(csv.groups!.every((g) => (JSON.parse(g) as Raw).label === null)).toBe(true);
    // Access permissions have no CSV form: the CSV run leaves them alone (none, on a first run).
    const permissions = sim.users('_host').flatMap((u) => (u.accessPermissions as { items?: unknown[] } | undefined)?.items ?? []);
    expect(permissions).toHaveLength(175); // what the simulator holds for these 80 users
    expect(json.user_access_permissions).toHaveLength(permissions.length);
    expect(csv.user_access_permissions).toEqual([]);
    // raw is the record as the CSV gave it: header spellings, typed values, no links/permissions.
    const [row] = await zipDb.query<{ raw: Raw; party: string }>(`SELECT raw FROM cpq.users WHERE login = $1`, [sim.users('_host')[0]!.login]);
    expect(row!.raw).toMatchObject({
      isNotifyFax: expect.any(Boolean) as unknown,
      status: { value: expect.any(Number) as unknown },
      TimeZone: { Value: expect.any(String) as unknown },
    });
    expect(row!.raw).not.toHaveProperty('links');
    expect(row!.raw).not.toHaveProperty('accessPermissions');
  });

  it('.csv: an empty cell of a text field loads as "", where a JSON record without the field loads NULL', async () => {
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 3, integrationUsers: 1, zipExport: { entries: [{ format: 'csv' }] } });
    const { jsonDb, zipDb } = await jsonAndZip(sim);
    const login = sim.integrationUsers()[0]!.login;
    const firstName = async (t: typeof jsonDb) =>
      (await t.query<{ f: string | null }>(`SELECT first_name AS f FROM cpq.users WHERE login = $1`, [login]))[0]!.f;
    expect(await firstName(jsonDb)).toBeNull();
    expect(await firstName(zipDb)).toBe('');
  });
});

describe('zip export: archives written by other tools', () => {
  const base = sharedSite(
    { partnerCompanies: 0, usersPerCompany: 45, integrationUsers: 2, zipExport: { entries: [{ format: 'json' }, { format: 'jsonl' }] } },
    { CPQ_PAGE_SIZE: '10' },
  );

  /** Serves `archive` as the export, syncs it into a fresh database and compares with the JSON baseline. */
  async function expectSameAsJson(archive: string) {
    base.sim.setZipExport({ archiveFile: archive });
    const zipDb = await bed.database();
    const zip = await bed.sync(base.sim, zipDb, { ...ZIP, CPQ_PAGE_SIZE: '10' });
    expect(zip.inserted).toBe(47);
    expectSameTables(base.contents, await databaseContents(zipDb));
  }

  /** The simulator's export as .json + .jsonl entries, rewritten by Python's zipfile in each way common tools write. */
  const modes: [string, string[]][] = [
    ['deflate, sizes in the local headers', []],
    ['stored', ['--stored']],
    ['data descriptors (written to a pipe)', ['--unseekable']],
    ['zip64 extra fields and zip64 end records', ['--zip64']],
    [
      'zip64 + data descriptors + stored, folders and a UTF-8 name',
      ['--zip64', '--unseekable', '--stored', '--dir', 'exportación/', '--rename', 'users-1.json=exportación/usuarios-ñ.json'],
    ],
  ];

  it.each(modes)('Python zipfile, %s', async (_name, args) => {
    const source = await bed.fetchExport(base.sim, '_host', { entries: [{ format: 'json' }, { format: 'jsonl' }] });
    const archive = join(await bed.tempDir(), 'python.zip');
    await pythonZip(archive, ['--from-zip', source, ...args]);
    await expectSameAsJson(archive);
  });

  it('yazl, zip64 with data descriptors and a folder', async () => {
    const { ZipFile } = await import('yazl');
    const { createWriteStream } = await import('node:fs');
    const { pipeline } = await import('node:stream/promises');
    const { Readable } = await import('node:stream');
    // The entry text, read back from the simulator's own export by Python (which checks its CRC).
    const source = await bed.fetchExport(base.sim, '_host', { entries: [{ format: 'jsonl' }] });
    const text = await python3(['-c', 'import sys,zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("users.jsonl"))', source]);
    const zip = new ZipFile();
    zip.addEmptyDirectory('data/');
    zip.addReadStream(Readable.from([text]), 'data/users.jsonl', { forceZip64Format: true, compress: true });
    zip.end({ forceZip64Format: true, comment: '' });
    const archive = join(await bed.tempDir(), 'yazl.zip');
    await pipeline(zip.outputStream, createWriteStream(archive));
    await expectSameAsJson(archive);
  });

  it('loads an export split into .json pages that together hold every user (hasMore and totalResults count over the archive)', async () => {
    const dir = await bed.tempDir();
    const user = (login: string) => `{"login":"${login}","lastname":"L","status":{"value":1,"displayValue":"Active"}}`;
    await writeFile(join(dir, 'p1.json'), `{"items":[${user('u1')},${user('u2')}],"offset":0,"limit":2,"count":2,"hasMore":true,"totalResults":3}`);
    await writeFile(join(dir, 'p2.json'), `{"items":[${user('u3')}],"offset":2,"limit":2,"count":1,"hasMore":false,"totalResults":3}`);
    const archive = join(dir, 'paged.zip');
    await pythonZip(archive, [`part-1.json=${join(dir, 'p1.json')}`, `part-2.json=${join(dir, 'p2.json')}`]);
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0, zipExport: { archiveFile: archive } });
    const t = await bed.database();
    await bed.sync(sim, t, ZIP);
    expect(await t.query(`SELECT login FROM cpq.users ORDER BY login`)).toEqual([{ login: 'u1' }, { login: 'u2' }, { login: 'u3' }]);
  });

  it('.json pages whose totalResults is above their different users (a repeat in place of a user, a stale count) are a short read: loaded, warned, nothing deleted', async () => {
    const dir = await bed.tempDir();
    const user = (login: string) => `{"login":"${login}","lastname":"L","status":{"value":1,"displayValue":"Active"},"dateModified":"2025-01-01T00:00:00Z"}`;
    const archive = async (name: string, bodies: string[]) => {
      const files = await Promise.all(
        bodies.map(async (body, i) => {
          await writeFile(join(dir, `${name}-${i}.json`), body);
          return `part-${i + 1}.json=${join(dir, `${name}-${i}.json`)}`;
        }),
      );
      await pythonZip(join(dir, `${name}.zip`), files);
      return join(dir, `${name}.zip`);
    };
    const whole = await archive('whole', [`{"items":[${['u1', 'u2', 'u3', 'u4'].map(user).join(',')}],"hasMore":false}`]);
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0, zipExport: { archiveFile: whole } });
    const t = await bed.database();
    expect((await bed.sync(sim, t, ZIP)).inserted).toBe(4);
    // u1 twice where u2 should be.
    sim.setZipExport({
      archiveFile: await archive('repeat', [
        `{"offset":0,"items":[${user('u1')},${user('u1')}],"hasMore":true,"totalResults":4}`,
        `{"offset":2,"items":[${user('u3')},${user('u4')}],"hasMore":false,"totalResults":4}`,
      ]),
    });
    const run = await bed.sync(sim, t, ZIP);
    expect(run.deleted).toBe(0);
    expect(run.warnings).toEqual([
      'companies/_host: read 3 of 4 users that CPQ reported (totalResults) (4 records, for 3 different users); the read was short',
      'deletion skipped for companies/_host: the read was short (3 of 4); nothing was marked deleted',
    ]);
    expect(await t.query(`SELECT count(*)::int AS n FROM cpq.users WHERE deleted_at IS NULL`)).toEqual([{ n: 4 }]);
  });

  it('keeps int64 values exact in every entry format (Python-written archive)', async () => {
    const dir = await bed.tempDir();
    const user = (login: string, partyId: string) =>
      `{"login":"${login}","partyId":${partyId},"partyNumber":"${partyId}","id":3024590297,"lastname":"L","status":{"value":1,"displayValue":"Active"}}`;
    await writeFile(join(dir, 'a.json'), `{"items":[${user('json-user', '181556695830934950')}],"hasMore":false}`);
    await writeFile(join(dir, 'b.jsonl'), `${user('jsonl-user', '935719302534024740')}\n`);
    await writeFile(
      join(dir, 'c.csv'),
      'login,partyId,partyNumber,id,LastName,status.value,status.displayValue\r\ncsv-user,9223372036854775807,9223372036854775807,3024590297,L,1,Active\r\n',
    );
    const archive = join(dir, 'int64.zip');
    await pythonZip(archive, [`users.json=${join(dir, 'a.json')}`, `users.jsonl=${join(dir, 'b.jsonl')}`, `users.csv=${join(dir, 'c.csv')}`]);
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 0, integrationUsers: 0, zipExport: { archiveFile: archive } });
    const t = await bed.database();
    await bed.sync(sim, t, ZIP);
    const rows = await t.query<Raw>(
      `SELECT login, party_id::text AS party_id, cpq_id::text AS cpq_id, last_name, status, raw->'partyId' AS raw_party_id_json, raw::text AS raw
       FROM cpq.users ORDER BY login`,
    );
    expect(rows.map((r) => [r.login, r.party_id, r.cpq_id, r.last_name, r.status])).toEqual([
      ['csv-user', '9223372036854775807', '3024590297', 'L', 1],
      ['json-user', '181556695830934950', '3024590297', 'L', 1],
      ['jsonl-user', '935719302534024740', '3024590297', 'L', 1],
    ]);
    expect(rows[0]!.raw).toContain('"partyId": 9223372036854775807');
    expect(rows[1]!.raw).toContain('"partyId": 181556695830934950');
    expect(rows[2]!.raw).toContain('"partyId": 935719302534024740');
  });
});

describe('zip export: broken and hostile archives are refused, nothing is loaded', () => {
  const cases: [string, ZipExportOptions, Record<string, string>, RegExp][] = [
    [
      'truncated archive',
      { fault: 'truncated' },
      {},
      /zip export: the archive is truncated or not a zip \(no end of central directory record in its last \d+ bytes, from byte \d+\)$/,
    ],
    ['corrupt compressed data', { fault: 'corrupt-data' }, {}, /zip export: entry "users.json" has corrupt compressed data \(invalid block type\)/],
    [
      'bad CRC',
      { fault: 'bad-crc', compression: 'store' },
      {},
      /zip export: entry "users.json" fails its CRC-32 check \(stored [0-9a-f]{8}, data [0-9a-f]{8}\); the archive is corrupt/,
    ],
    [
      'more data than declared',
      { fault: 'understated-size' },
      {},
      /entry "users.json" holds more data than its header declares .*refused as a possible zip bomb/,
    ],
    [
      'compression ratio of a zip bomb',
      { fault: 'bomb' },
      {},
      /entry "users.json" expands \d+x \(\d+ to \d+ bytes\), beyond CPQ_ZIP_MAX_RATIO \(200\); refused as a possible zip bomb/,
    ],
    [
      'an entry larger than CPQ_ZIP_MAX_BYTES',
      {},
      { CPQ_ZIP_MAX_BYTES: '16384' },
      /entry "users.json" is \d+ bytes uncompressed, more than CPQ_ZIP_MAX_BYTES \(16384\); refused/,
    ],
    [
      'a download larger than CPQ_ZIP_MAX_BYTES',
      { compression: 'store' },
      { CPQ_ZIP_MAX_BYTES: '4096' },
      /the export is larger than CPQ_ZIP_MAX_BYTES \(4096 bytes\)/,
    ],
    [
      'more entries than the default bound',
      { fault: 'too-many-entries' },
      {},
      /the archive holds 1002 entries by its end record at byte \d+, more than CPQ_ZIP_MAX_ENTRIES \(1000\); refused$/,
    ],
    [
      'more entries than CPQ_ZIP_MAX_ENTRIES',
      { entries: [{ format: 'json' }, { format: 'json' }, { format: 'jsonl' }, { format: 'csv' }] },
      { CPQ_ZIP_MAX_ENTRIES: '3' },
      /holds 4 entries by its end record at byte \d+, more than CPQ_ZIP_MAX_ENTRIES \(3\); refused$/,
    ],
    ['an encrypted entry', { fault: 'encrypted' }, {}, /entry "users.json" is encrypted; the export must come without a password/],
    [
      'an unsupported compression method',
      { fault: 'unsupported-method' },
      {},
      /entry "users.json" uses compression method 12; only stored \(0\) and deflate \(8\) are supported/,
    ],
    [
      'no user entry',
      { entries: [], folder: 'export' },
      {},
      /the archive holds no user entry \(\.json, \.jsonl, \.ndjson, \.csv\), only 1 folder or metadata entries, in its central directory of 1 at byte \d+$/,
    ],
    [
      'an entry of unknown type',
      { extraEntries: [{ name: 'export/readme.txt', content: 'hello' }] },
      {},
      /entry "export\/readme.txt" is not a user entry: only \.json, \.jsonl, \.ndjson, \.csv entries are read/,
    ],
    [
      'an entry named like a folder that holds data (one damaged byte of its name)',
      { fault: 'folder-name' },
      {},
      /entry "users.jso\/" is named like a folder but holds \d+ bytes; refused/,
    ],
    [
      'an entry name climbing out of the folder',
      { extraEntries: [{ name: '../users.json', content: '[]' }] },
      {},
      /zip export: entry "\.\.\/users\.json" has an unsafe name \(invalid relative path\), reading the central directory record at byte \d+ \(entry \d+ of \d+\)$/,
    ],
    [
      'an absolute entry name',
      { extraEntries: [{ name: '/etc/users.json', content: '[]' }] },
      {},
      /zip export: entry "\/etc\/users\.json" has an unsafe name \(absolute path\), reading the central directory record at byte \d+ \(entry \d+ of \d+\)$/,
    ],
    [
      'two entries with one name',
      {
        entries: [
          { format: 'json', name: 'users.json' },
          { format: 'json', name: 'users.json' },
        ],
      },
      {},
      /the archive holds two entries named "users.json"; refused/,
    ],
    ['a body that is not a zip', { fault: 'not-a-zip' }, {}, /expected a zip archive, got application\/zip with an HTML page \("<html><body><h1>Export/],
    [
      'a .jsonl line that is not JSON',
      { extraEntries: [{ name: 'late.jsonl', content: '{"login":"late1"}\n{"login":\n' }] },
      {},
      /entry "late.jsonl": line 2 is not valid JSON/,
    ],
    [
      'a .json item that is not a user',
      { extraEntries: [{ name: 'late.json', content: '[{"login":"late1"},42]' }] },
      {},
      /entry "late.json": items\[1\]: expected a user object, got 42/,
    ],
    [
      'a .json entry cut short',
      { extraEntries: [{ name: 'late.json', content: '{"items":[{"login":"late1"}' }] },
      {},
      /entry "late.json": the JSON ends early \(the entry is truncated\)/,
    ],
    [
      // Taken for the whole company, the users it left out would be marked deleted.
      'a .json page whose hasMore says more, with no page after it',
      {
        entries: [{ format: 'jsonl' }],
        extraEntries: [{ name: 'late.json', content: '{"offset":0,"items":[{"login":"late1"}],"hasMore":true,"totalResults":1}' }],
      },
      {},
      /zip export: the last page, entry "late.json", says hasMore: true; refused rather than taken for every user of the company$/,
    ],
    [
      '.json pages with a page missing between them',
      {
        entries: [{ format: 'jsonl' }],
        extraEntries: [
          { name: 'p1.json', content: '{"offset":0,"items":[{"login":"late1"}],"hasMore":true}' },
          { name: 'p3.json', content: '{"offset":2,"items":[{"login":"late3"}],"hasMore":false}' },
        ],
      },
      {},
      /zip export: the pages do not follow each other: entry "p3.json" starts at offset 2, not 1; refused rather than taken for every user of the company$/,
    ],
    [
      '.json pages without their offsets',
      { entries: [{ format: 'jsonl' }], extraEntries: [{ name: 'late.json', content: '{"items":[{"login":"late1"}],"hasMore":true}' }] },
      {},
      /zip export: entry "late.json" gives no offset, though the export comes in pages; refused rather than taken for every user of the company$/,
    ],
    [
      'a .json body whose offset is text',
      { entries: [{ format: 'jsonl' }], extraEntries: [{ name: 'late.json', content: '{"offset":"0","items":[{"login":"late1"}],"hasMore":false}' }] },
      {},
      /zip export: entry "late.json": offset must be a whole number of 0 or more, not "0"; refused rather than taken for every user of the company$/,
    ],
    [
      'a .json body whose offset is an object (review CK: printed [object Object])',
      { entries: [{ format: 'jsonl' }], extraEntries: [{ name: 'late.json', content: '{"offset":{},"items":[{"login":"late1"}],"hasMore":false}' }] },
      {},
      /zip export: entry "late.json": offset must be a whole number of 0 or more, not an object; refused rather than taken for every user of the company$/,
    ],
    [
      'a .json page whose hasMore is text',
      { entries: [{ format: 'jsonl' }], extraEntries: [{ name: 'late.json', content: '{"items":[{"login":"late1"}],"hasMore":"true"}' }] },
      {},
      /zip export: entry "late.json": hasMore must be true or false; refused rather than taken for every user of the company$/,
    ],
    [
      'the last of .json pages alone (its offset is not 0)',
      { entries: [{ format: 'jsonl' }], extraEntries: [{ name: 'p2.json', content: '{"offset":1,"items":[{"login":"late2"}],"hasMore":false}' }] },
      {},
      /zip export: the pages do not follow each other: entry "p2.json" starts at offset 1, not 0; refused rather than taken for every user of the company$/,
    ],
    [
      'a .csv header of more columns than a user has fields',
      { extraEntries: [{ name: 'late.csv', content: `login,${Array.from({ length: 2000 }, (_, i) => `c${i}`).join(',')}\r\n` }] },
      {},
      /entry "late\.csv": header \(line 1\): 2001 columns, more than 2000; refused$/,
    ],
    [
      'a .csv column nested deeper than any field',
      { extraEntries: [{ name: 'late.csv', content: `login,${Array(17).fill('a').join('.')}\r\nx,y\r\n` }] },
      {},
      /entry "late\.csv": header \(line 1\): column "a(\.a){16}" nests more than 16 levels deep; refused$/,
    ],
    [
      'a .csv groups cell of more names than a record may hold values',
      { extraEntries: [{ name: 'late.csv', content: `login,groups\r\nx,${'g;'.repeat(100_000)}\r\n` }] },
      {},
      /entry "late\.csv": line 2: groups: more than 100000 names; refused as too complex$/,
    ],
    [
      'a .csv header naming what CSV cannot hold',
      { extraEntries: [{ name: 'late.csv', content: 'login,accessPermissions\r\nx,y\r\n' }] },
      {},
      /entry "late.csv": header \(line 1\): column "accessPermissions": accessPermissions cannot be given in a CSV export/,
    ],
    [
      'a .csv row with a missing field',
      { extraEntries: [{ name: 'late.csv', content: 'login,email\r\nlate1,a@b.c\r\nlate2\r\n' }] },
      {},
      /entry "late.csv": line 3 has 1 fields, the header has 2/,
    ],
    [
      'a .csv value that does not fit its field',
      { extraEntries: [{ name: 'late.csv', content: 'login,isNotifyFax\r\nlate1,maybe\r\n' }] },
      {},
      /^user "_host\/late1" \(entry "late.csv" line 2 of http:\S+\): field "isNotifyFax" must be true or false, got "maybe"$/,
    ],
    // 30 users, then this entry's lines 1-10: line 7 is on a page cut in the middle of the entry.
    [
      'a record without login, on a page cut from the middle of an entry',
      {
        extraEntries: [
          { name: 'late.jsonl', content: Array.from({ length: 10 }, (_, i) => (i === 6 ? '{"firstName":"x"}' : `{"login":"late${i}"}`)).join('\n') },
        ],
      },
      {},
      /^entry "late.jsonl" line 7 of http:\S+: field "login" is missing or not text \(got undefined\)$/,
    ],
  ];

  // A good JSON run first; every failed zip run must leave the database exactly as it left it,
  // though a good zip read would change a user and add one.
  const base = sharedSite({ partnerCompanies: 0, usersPerCompany: 30, integrationUsers: 0, zipExport: {} });
  beforeAll(() => {
    base.sim.updateUser('_host', String(base.sim.users('_host')[0]!.login), { lastName: 'Changed' });
    base.sim.addUser('_host', { login: 'aaa-new' });
  });

  it('(the same export without damage loads, and differs from what the database holds)', async () => {
    base.sim.setZipExport({});
    const t = await bed.database();
    await bed.sync(base.sim, t, ZIP);
    const good = await databaseContents(t);
    expect(good.users!.length).toBe(base.contents.users!.length + 1);
    expect(good.users!.some((u) => u.includes('"last_name":"Changed"'))).toBe(true);
    expect(base.contents.users!.some((u) => u.includes('"last_name":"Changed"'))).toBe(false);
  });

  it.each(cases)('%s', async (_name, zipExport, env, message) => {
    const { sim, jsonDb: t, contents: before } = base;
    sim.setZipExport(zipExport);
    // A small page size: records of the good entries are staged before the failure.
    const { error, tmp } = await bed.run(sim, t, { ...ZIP, CPQ_PAGE_SIZE: '4', ...env });
    expect(error).toBeInstanceOf(SyncError);
    expect((error as SyncError).kind).toBe('data');
    expect(error!.message).toMatch(message);
    expect(error!.message).not.toMatch(/[\r\n]/);
    expect(error!.message).toMatch(/^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users: |^user "_host\/|^entry "/);
    expectSameTables(before, await databaseContents(t));
    const [run] = await t.query<{ status: string; error: string }>(`SELECT status, error FROM cpq.sync_runs ORDER BY id DESC LIMIT 1`);
    expect(run).toEqual({ status: 'failed', error: error!.message });
    expect(await filesIn(tmp)).toEqual([]);
  });
});

describe('zip export: transport', () => {
  it('retries a download cut off mid-body, and starts the file over', async () => {
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 50, integrationUsers: 0, zipExport: {} });
    sim.addFault({ match: { path: '/rest/v16/companies/_host/users' }, action: 'reset' });
    const t = await bed.database();
    const result = await bed.sync(sim, t, ZIP);
    expect(result.inserted).toBe(50);
    expect(sim.requests.map((r) => r.status)).toEqual([200, 200]);
    const [run] = await t.query<{ http_retries: Record<string, number> }>(`SELECT http_retries FROM cpq.sync_runs`);
    expect(run!.http_retries).toEqual({ network: 1 });
  });

  it('says so when the site has no zip export', async () => {
    const sim = await bed.simulator({ partnerCompanies: 0, usersPerCompany: 5, integrationUsers: 0 }); // no zipExport: 406
    const t = await bed.database();
    const { error } = await bed.run(sim, t, ZIP);
    expect(error).toMatchObject({ kind: 'source' });
    expect(error!.message).toMatch(
      /^GET http:\/\/127\.0\.0\.1:\d+\/rest\/v16\/companies\/_host\/users: CPQ answered 406 with "\{"title":"Not Acceptable","status":406,"detail":"The zip exp…"$/,
    );
  });
});

describe('zip export: the totalResults of a list that fills its last page exactly', () => {
  it('is counted against: 4 users read in pages of 2 with totalResults 5 is a short read, with 4 a whole one (review CA)', async () => {
    const site = await hostileSite({ CPQ_PAGE_SIZE: '2' });
    try {
      const items = [1, 2, 3, 4].map((i) => ({ login: `z${i}` }));
      for (const [totalResults, shortRead] of [
        [4, false],
        [5, true],
      ] as const) {
        site.serve('exact', zipExport([{ name: 'users.json', text: JSON.stringify({ items, hasMore: false, totalResults }) }]), 'application/zip');
        const { result, error } = await site.run('exact', { format: 'zip' });
        expect(error).toBeUndefined();
        expect(result!.streams.find((s) => s.stream === 'companies/exact')).toMatchObject({ received: 4, totalResults, shortRead });
      }
    } finally {
      await site.close();
    }
  });
});

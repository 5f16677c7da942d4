// CSV parser benchmark: the hand parser (src/cpq/csv-rows.ts) against csv-parse, on the
// simulator's CSV zip export of N users (one users.csv entry), fed in 64 KiB chunks.
// csv-parse is not a dependency; to run it again:
//   npm run build --silent && npm i --no-save csv-parse@7 && node bench/csv-parsers.mjs 100000 5
// Figures and the decision: bench/RESULTS.md ("CSV parser").
import { execFileSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { parse } from 'csv-parse';
const ROOT = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const { CpqSimulator } = await import(`${ROOT}/dist/simulator/index.js`);
const { CsvRowsParser } = await import(`${ROOT}/dist/cpq/csv-rows.js`);

const users = Number(process.argv[2] ?? 100000);
const reps = Number(process.argv[3] ?? 5);
const sim = new CpqSimulator({ usersPerCompany: users, partnerCompanies: 0, integrationUsers: 0, zipExport: { entries: [{ format: 'csv' }] } });
const url = await sim.start();
const res = await fetch(`${url}/rest/v16/companies/_host/users`, { headers: { accept: 'application/zip' } });
const zip = Buffer.from(await res.arrayBuffer());
await sim.stop();
const dir = mkdtempSync(join(tmpdir(), 'csvbench-'));
writeFileSync(join(dir, 'users.zip'), zip);
const csv = execFileSync('unzip', ['-p', join(dir, 'users.zip'), 'users.csv'], { maxBuffer: 1 << 30 });
// The zip reader yields inflate chunks of 16 KiB or so; the StringDecoder turns each into text.
const CHUNK = 64 * 1024;
const byteChunks = [];
for (let at = 0; at < csv.length; at += CHUNK) byteChunks.push(csv.subarray(at, at + CHUNK));
const textChunks = byteChunks.map((b) => b.toString('latin1')); // ASCII data; same lengths
console.log(`${users} users, CSV ${(csv.length / 1e6).toFixed(1)} MB, ${byteChunks.length} chunks of 64 KiB, ${reps} reps each (best and median)`);

function hand() {
  let rows = 0;
  let last;
  const p = new CsvRowsParser((cells, line) => {
    rows++;
    last = line;
  });
  for (const c of textChunks) p.write(c);
  p.end();
  return [rows, last];
}
async function csvParse() {
  let rows = 0;
  let last;
  const parser = Readable.from(byteChunks).pipe(
    parse({
      bom: true,
      skip_empty_lines: true,
      relax_column_count: true,
      max_record_size: 16 * 1024 * 1024,
      info: true,
      record_delimiter: ['\r\n', '\n', '\r'],
    }),
  );
  for await (const { record, info } of parser) {
    rows++;
    last = info.lines;
  }
  return [rows, last];
}
async function time(name, f) {
  const ms = [];
  let out;
  for (let i = 0; i < reps + 1; i++) {
    const t = process.hrtime.bigint();
    out = await f();
    const d = Number(process.hrtime.bigint() - t) / 1e6;
    if (i > 0) ms.push(d); // first run warms up
  }
  ms.sort((a, b) => a - b);
  const med = ms[Math.floor(ms.length / 2)];
  console.log(
    `${name}: best ${ms[0].toFixed(0)} ms, median ${med.toFixed(0)} ms, ${(csv.length / 1e6 / (med / 1000)).toFixed(0)} MB/s; rows ${out[0]}, last line ${out[1]}`,
  );
  return med;
}
const a = await time('hand parser (csv-rows.ts)', hand);
const b = await time('csv-parse 7 (stream)', csvParse);
console.log(`csv-parse / hand = ${(b / a).toFixed(2)}x`);

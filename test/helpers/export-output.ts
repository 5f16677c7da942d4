import { PassThrough } from 'node:stream';

/** What an export writes to its output (`write` gets the stream and ends when the export does), as text. */
export async function collect(write: (out: PassThrough) => Promise<unknown>): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await write(out);
  out.end();
  return Buffer.concat(chunks).toString('utf8');
}

/** The JSON lines an export writes, each parsed (for comparing values; exactness is checked on the text). */
export async function collectJsonLines(write: (out: PassThrough) => Promise<unknown>): Promise<Record<string, unknown>[]> {
  return (await collect(write))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

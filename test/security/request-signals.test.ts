import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * The OAuth token request and an alert's POST, like every CPQ request (cpq-content-encodings),
 * each have a signal of their own, let go of when the request ends (src/linked-signal.ts). With
 * AbortSignal.timeout, an answer that Node 20's fetch refuses (six Content-Encodings) left its
 * body stream on that signal: when the timeout fired, after the request had long failed, the
 * stream emitted an 'error' nobody heard and the process died. Each is run in a process of its
 * own (the built modules, as the CLI runs them) that outlives the request's timeout.
 */

let server: Server;
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip, gzip, gzip, gzip, gzip, gzip' });
    res.end(Buffer.alloc(100_000, 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Runs `body` (an ES module's text, with `dist` naming the built modules' folder) and then waits well past the 300 ms timeout. */
function survives(body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dist = new URL('../../dist/', import.meta.url).href;
  const script = `const dist = ${JSON.stringify(dist)};\n${body}\nawait new Promise((r) => setTimeout(r, 1000));\nconsole.log('alive');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { PATH: process.env.PATH ?? '' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('an answer with more Content-Encodings than fetch decodes', () => {
  it('fails the OAuth token request, and the process lives on past its timeout', async () => {
    const out = await survives(`
      const { OAuthClientCredentials } = await import(dist + 'cpq/auth.js');
      const auth = new OAuthClientCredentials({ kind: 'oauth', tokenUrl: ${JSON.stringify(`${base}/oauth/token`)}, clientId: 'c', clientSecret: 's' }, 300);
      await auth.authorization().then(() => console.log('granted'), (err) => console.log('refused: ' + err.message));`);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/^refused: .*\nalive\n$/);
  });

  it("fails an alert's POST as transient, and the process lives on past its timeout", async () => {
    const out = await survives(`
      const { postAlert } = await import(dist + 'alerts/delivery.js');
      const result = await postAlert({ url: ${JSON.stringify(`${base}/hook`)}, secret: 'k', timeoutMs: 300 }, '{}', 'key-1');
      console.log(JSON.stringify({ ok: result.ok, permanent: result.permanent }));`);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe('{"ok":false,"permanent":false}\nalive\n');
  });
});

import { chmod, chown, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect } from 'vitest';
import { cli } from '../helpers/cli-process.js';
import { it } from '../helpers/harness.js';

/*
 * CPQ_SITES_FILE names where each site's credentials go (baseUrl) and which they are: any file the
 * process can read (passwordFile) and any variable of its environment (`${DATABASE_URL}`). Whoever
 * can write the file but read none of the secrets (its group, every user, or its owner when that
 * is someone else) had a run send them to a listener of theirs (review DM). Refused as a `.env` is.
 */

const NOBODY = 65534;
const dirs: string[] = [];
const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((done) => server.close(done));
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A listener on loopback that records the Basic credentials it is sent. */
async function listener(): Promise<{ url: string; received: string[] }> {
  const received: string[] = [];
  const server = createServer((req, res) => {
    received.push(Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString());
    res.writeHead(401).end();
  });
  servers.push(server);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

async function sitesFile(baseUrl: string): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cpq-sync-sites-'));
  dirs.push(dir);
  const secret = join(dir, 'emea-password');
  await writeFile(secret, 'emea-Pw4-only-mine\n', { mode: 0o600 });
  const file = join(dir, 'sites.yaml');
  await writeFile(file, `sites:\n  - name: emea\n    baseUrl: ${baseUrl}\n    username: "\${DATABASE_URL}"\n    passwordFile: ${secret}\n`, { mode: 0o600 });
  return { dir, file };
}

describe('CPQ_SITES_FILE another local user could write', () => {
  it('is refused, one line, exit code 2, before any request, when its group or every user can write it', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const evil = await listener();
    const { file } = await sitesFile(evil.url);
    for (const [mode, who] of [
      [0o666, 'every user'],
      [0o664, 'its group'],
    ] as const) {
      await chmod(file, mode);
      const out = await cli(['run'], { CPQ_SITES_FILE: file, DATABASE_URL: h.t.url, CPQ_MAX_RETRIES: '0' });
      expect(out.code).toBe(2);
      expect(out.stderr).toMatch(
        new RegExp(
          `^cpq-sync: invalid configuration: CPQ_SITES_FILE: \\S+sites\\.yaml can be written by ${who} \\(mode ${mode.toString(8)}\\): refusing to read it, since whoever wrote it chooses where credentials are sent; make it yours and not writable by others \\(chown, chmod go-w\\)\\n$`,
        ),
      );
      expect(evil.received).toEqual([]);
    }
    // The operator's own file, not writable by others: read (the credentials go where it says).
    await chmod(file, 0o644);
    const read = await cli(['run'], { CPQ_SITES_FILE: file, DATABASE_URL: h.t.url, CPQ_MAX_RETRIES: '0' });
    expect(read.stderr).not.toMatch(/refusing to read it/);
    expect(evil.received.length).toBeGreaterThan(0);
  });

  it.runIf(process.getuid?.() === 0)('(as root) is refused when another user owns it, or the file a link to it names', async ({ startHarness }) => {
    const h = await startHarness({ partnerCompanies: 0, usersPerCompany: 2, integrationUsers: 0 });
    const evil = await listener();
    const { dir, file } = await sitesFile(evil.url);
    await chmod(file, 0o644);
    await chown(file, NOBODY, NOBODY);
    const owned = await cli(['run'], { CPQ_SITES_FILE: file, DATABASE_URL: h.t.url, CPQ_MAX_RETRIES: '0' });
    expect(owned.code).toBe(2);
    expect(owned.stderr).toMatch(
      /^cpq-sync: invalid configuration: CPQ_SITES_FILE: \S+sites\.yaml is owned by uid 65534, not by this user \(0\) or root: refusing to read it/,
    );
    const link = join(dir, 'link.yaml');
    await symlink(file, link);
    const linked = await cli(['check'], { CPQ_SITES_FILE: link, DATABASE_URL: h.t.url, CPQ_MAX_RETRIES: '0' });
    expect(linked.stdout + linked.stderr).toMatch(
      /CPQ_SITES_FILE: \S+link\.yaml \(what the link names\) is owned by uid 65534, not by this user \(0\) or root: refusing to read it/,
    );
    expect(evil.received).toEqual([]);
  });
});

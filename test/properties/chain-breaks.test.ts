import fc from 'fast-check';
import type pg from 'pg';
import { describe, expect } from 'vitest';
import { verifyChain, type ChainReport } from '../../src/sync/verify.js';
import { it, type Harness } from '../helpers/harness.js';
import { propertyTimeout, runs } from './arbitraries.js';

/*
 * verify --chain names every run a forger touched (review GW) and no untouched one beside it
 * (reviews HC, HD). Five sealed runs of one site, then one to three tamperings in a transaction
 * rolled back after (as chain.test's verifyAfter): rows of a run altered, removed or added, a
 * seal's hashes overwritten, a seal removed, rows under a run id no run has. Each report is held
 * to a model of which runs were touched (written by review HD).
 */

async function history(h: Harness): Promise<string[]> {
  await h.sync();
  const l = h.sim.users('_host').map((u) => String(u.login));
  h.sim.updateUser('_host', l[0]!, { lastName: 'Second', isUserAdminPermEnabled: true });
  h.sim.addGroup('_host', l[1]!, { variableName: 'auditors', label: 'Auditors', type: 'Administrator' });
  await h.sync();
  h.sim.deleteUser('_host', l[2]!);
  h.sim.updateUser('_host', l[0]!, { lastName: 'Third' });
  await h.sync({ full: true });
  h.sim.updateUser('_host', l[3]!, { lastName: 'Fourth' });
  h.sim.updateUser('_host', l[0]!, { lastName: 'Fourth' });
  await h.sync({ full: true });
  h.sim.deleteUser('_host', l[4]!);
  h.sim.updateUser('_host', l[3]!, { lastName: 'Fifth' });
  await h.sync({ full: true });
  return (await h.t.query<{ id: string }>(`SELECT id::text FROM cpq.sync_runs WHERE status = 'succeeded' ORDER BY sync_runs.id`)).map((r) => r.id);
}

/** What verify reads of each run, as it now is: its seal of this site (or none: one filed under another is none here), its rows' content hash now, and its chain hash recomputed from the seal before as stored. */
interface SealState {
  run: string;
  sealed: boolean;
  content: string | null;
  chain: string | null;
  previous: string | null;
  contentNow: string;
  chainFromStored: string | null;
}

async function sealStates(on: pg.Pool | pg.PoolClient, ids: string[]): Promise<SealState[]> {
  // Every seal of this history is of lines 4 (this release's): a removed one's content is read so too.
  const result = await on.query<SealState>(
    `SELECT o.run_id::text AS run, s.run_id IS NOT NULL AS sealed, s.content_sha256 AS content, s.chain_sha256 AS chain, s.previous_run_id::text AS previous,
            cpq.run_content_sha256(o.run_id, 4::smallint) AS "contentNow",
            cpq.run_chain_sha256(s.site, s.run_id, (SELECT p.chain_sha256 FROM cpq.run_seals p WHERE p.site = 'default' AND p.run_id < o.run_id ORDER BY p.run_id DESC LIMIT 1), s.content_sha256) AS "chainFromStored"
     FROM unnest($1::bigint[]) AS o(run_id) LEFT JOIN cpq.run_seals s ON s.run_id = o.run_id AND s.site = 'default'
     ORDER BY o.run_id`,
    [ids],
  );
  return result.rows;
}

type RunTamper =
  'alterLog' | 'deleteLog' | 'addLog' | 'deleteEnded' | 'chain' | 'content' | 'reseal' | 'rechain' | 'relink' | 'misfile' | 'deleteSeal' | 'relinkDelete';
type Tamper = { kind: RunTamper; k: number } | { kind: 'orphan'; id: number };
const label = (t: Tamper, ids: string[]) => (t.kind === 'orphan' ? `orphan(${t.id})` : `${t.kind}(run#${t.k}=${ids[t.k]})`);

// Rows first, then seals: a seal recomputed (reseal, rechain) is over what was altered before it,
// and a chain hash recomputed over the one before it as that one then reads (so in run order).
const ORDER: Tamper['kind'][] = [
  'alterLog',
  'deleteLog',
  'addLog',
  'deleteEnded',
  'orphan',
  'chain',
  'content',
  'reseal',
  'rechain',
  'relink',
  'relinkDelete',
  'deleteSeal',
];

describe('verify --chain names every tampered run, and only those (property)', () => {
  it(
    'random tamperings of five sealed runs',
    async ({ startHarness }) => {
      const h = await startHarness({ usersPerCompany: 8, partnerCompanies: 1 });
      const ids = await history(h);
      expect(ids).toHaveLength(5);
      expect((await verifyChain(h.t.pool)).breaks).toEqual([]);
      const ended = new Map<number, string>();
      for (const [k, id] of ids.entries()) {
        const [v] = await h.t.query<{ v: string | null }>(`SELECT max(version_id)::text AS v FROM cpq.user_versions WHERE ended_by_run_id = $1`, [id]);
        if (v?.v) ended.set(k, v.v);
        const [n] = await h.t.query<{ n: string }>(`SELECT count(*)::text AS n FROM cpq.user_change_log WHERE run_id = $1`, [id]);
        expect(Number(n!.n), `run ${id} logs changes`).toBeGreaterThan(0);
      }
      const before = await sealStates(h.t.pool, ids);
      expect(before.every((b) => b.sealed && b.content === b.contentNow && b.chain === b.chainFromStored)).toBe(true);
      const [user] = await h.t.query<{ id: string; login: string }>(`SELECT id::text, login FROM cpq.users ORDER BY users.id LIMIT 1`);

      const runKinds: RunTamper[] = [
        'alterLog',
        'deleteLog',
        'addLog',
        'chain',
        'content',
        'reseal',
        'rechain',
        'relink',
        'misfile',
        'deleteSeal',
        'relinkDelete',
      ];
      const tamper: fc.Arbitrary<Tamper> = fc.oneof(
        { weight: 8, arbitrary: fc.record({ kind: fc.constantFrom(...runKinds), k: fc.integer({ min: 0, max: ids.length - 1 }) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('deleteEnded' as const), k: fc.constantFrom(...ended.keys()) }) },
        { weight: 1, arbitrary: fc.record({ kind: fc.constant('orphan' as const), id: fc.integer({ min: 900_000, max: 900_005 }) }) },
      );
      const tampers = fc.uniqueArray(tamper, { minLength: 1, maxLength: 3, selector: (t) => label(t, ids) });

      const apply = async (c: pg.PoolClient, t: Tamper) => {
        if (t.kind === 'orphan') {
          await c.query(
            `INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
             VALUES ($1, $2, '_host', $3, 'update', '{"is_user_admin_perm_enabled": {"old": false, "new": true}}', 'default', now())`,
            [t.id, user!.id, user!.login],
          );
          return;
        }
        const run = ids[t.k]!;
        switch (t.kind) {
          case 'alterLog':
            await c.query(
              `UPDATE cpq.user_change_log SET diff = coalesce(diff, '{}'::jsonb) || '{"forged": true}'::jsonb WHERE id = (SELECT min(id) FROM cpq.user_change_log WHERE run_id = $1)`,
              [run],
            );
            break;
          case 'deleteLog':
            await c.query(`DELETE FROM cpq.user_change_log WHERE id = (SELECT max(id) FROM cpq.user_change_log WHERE run_id = $1)`, [run]);
            break;
          case 'addLog':
            await c.query(
              `INSERT INTO cpq.user_change_log (run_id, user_id, company_login, login, change, diff, site, detected_at)
               VALUES ($1, $2, '_host', $3, 'update', '{"last_name": {"old": "A", "new": "B"}}', 'default', now())`,
              [run, user!.id, user!.login],
            );
            break;
          case 'deleteEnded':
            await c.query(`DELETE FROM cpq.user_versions WHERE version_id = $1`, [ended.get(t.k)]);
            break;
          case 'chain':
            await c.query(`UPDATE cpq.run_seals SET chain_sha256 = repeat('0', 63) || $2 WHERE run_id = $1`, [run, String(t.k)]);
            break;
          case 'content':
            await c.query(`UPDATE cpq.run_seals SET content_sha256 = repeat('f', 63) || $2 WHERE run_id = $1`, [run, String(t.k)]);
            break;
          case 'reseal':
            // The content hash recomputed from the rows as they now are (of no effect on untouched rows).
            await c.query(`UPDATE cpq.run_seals SET content_sha256 = cpq.run_content_sha256(run_id, lines) WHERE run_id = $1`, [run]);
            break;
          case 'rechain':
            // The chain hash recomputed from the seal before as it now reads and the content hash as it now reads.
            await c.query(
              `UPDATE cpq.run_seals s SET chain_sha256 = cpq.run_chain_sha256(s.site, s.run_id, (SELECT p.chain_sha256 FROM cpq.run_seals p WHERE p.run_id = s.previous_run_id), s.content_sha256)
               WHERE s.run_id = $1`,
              [run],
            );
            break;
          case 'relink':
            // The seal kept, its link to the one before removed (of no effect on the first seal).
            await c.query(`UPDATE cpq.run_seals SET previous_run_id = NULL WHERE run_id = $1`, [run]);
            break;
          case 'misfile':
            // The seal filed under another site's name, as the first of its chain (review HH): to this site, as good as removed.
            await c.query(
              `UPDATE cpq.run_seals SET site = 'ghost', previous_run_id = NULL, chain_sha256 = cpq.run_chain_sha256('ghost', run_id, NULL, content_sha256) WHERE run_id = $1`,
              [run],
            );
            break;
          case 'deleteSeal':
            // A forger with the rights to bypass the foreign key (previous_run_id) of the next seal.
            await c.query(`SET LOCAL session_replication_role = replica`);
            await c.query(`DELETE FROM cpq.run_seals WHERE run_id = $1`, [run]);
            await c.query(`SET LOCAL session_replication_role = origin`);
            break;
          case 'relinkDelete':
            // The next seal relinked to the one before, then the seal removed (the foreign key kept).
            await c.query(
              `UPDATE cpq.run_seals s SET previous_run_id = d.previous_run_id FROM cpq.run_seals d WHERE d.run_id = $1 AND s.previous_run_id = d.run_id`,
              [run],
            );
            await c.query(`DELETE FROM cpq.run_seals WHERE run_id = $1`, [run]);
            break;
        }
      };

      await fc.assert(
        fc.asyncProperty(tampers, async (ts) => {
          const at = (t: Tamper) => (t.kind === 'orphan' ? 0 : t.k);
          const sorted = [...ts].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind) || at(a) - at(b));
          const c = await h.t.pool.connect();
          let report: ChainReport;
          let after: SealState[];
          try {
            await c.query('BEGIN');
            for (const t of sorted) await apply(c, t);
            report = await verifyChain(c);
            after = await sealStates(c, ids);
          } finally {
            await c.query('ROLLBACK');
            c.release();
          }
          // The model, from what the tamperings left rather than which they were: a run is
          // touched when its rows or its seal differ from before. Each touched run is named,
          // unless its seal was rewritten to match (rows, link and both hashes consistent, so no
          // different from a sound seal): the next sealed run is named then, whose chain hash does
          // not follow from it. Beside them, an untouched run may be named after a run whose chain
          // hash cannot be recomputed (its seal removed, or its rows, content hash and chain hash
          // all overwritten: nothing holds what they were), and so on while each next one's chain
          // hash was overwritten too, since it followed from the one that cannot be recomputed.
          const expected = new Set<string>();
          const allowed = new Set<string>();
          const sealed = after.filter((a) => a.sealed);
          const nextSealed = (run: string) => sealed.find((a) => BigInt(a.run) > BigInt(run));
          for (const t of ts) if (t.kind === 'orphan') expected.add(String(t.id));
          for (const [i, a] of after.entries()) {
            const was = before[i]!;
            const rowsAltered = a.contentNow !== was.contentNow;
            const touched = !a.sealed || rowsAltered || a.content !== was.content || a.chain !== was.chain || a.previous !== was.previous;
            if (!touched) continue;
            allowed.add(a.run);
            const previous = sealed.filter((o) => BigInt(o.run) < BigInt(a.run)).at(-1);
            const consistent = a.sealed && a.content === a.contentNow && a.previous === (previous?.run ?? null) && a.chain === a.chainFromStored;
            if (!consistent) expected.add(a.run);
            else {
              const blamed = nextSealed(a.run);
              const blamedConsistent = blamed !== undefined && blamed.content === blamed.contentNow && blamed.chain === blamed.chainFromStored;
              if (blamed !== undefined && !blamedConsistent) expected.add(blamed.run);
            }
            const lost = !a.sealed || (rowsAltered && a.content !== was.content && a.chain !== was.chain);
            for (let next = lost ? nextSealed(a.run) : undefined; next !== undefined;) {
              allowed.add(next.run);
              const nextWas = before[ids.indexOf(next.run)]!;
              next = next.chain !== nextWas.chain ? nextSealed(next.run) : undefined;
            }
          }
          const named = new Set(report.breaks.map((b) => b.runId));
          const missed = [...expected].filter((r) => !named.has(r));
          const extra = [...named].filter((r) => !expected.has(r) && !allowed.has(r));
          // Earliest first within each site (a seal filed under another site is named under that one too).
          const ordered = report.breaks.every((b, i) => report.breaks.slice(0, i).every((a) => a.site !== b.site || BigInt(a.runId) <= BigInt(b.runId)));
          expect(
            { missed, extra, ordered },
            `tamperings ${ts.map((t) => label(t, ids)).join(', ')}; verify said:\n  ${report.breaks.map((b) => `${b.runId}: ${b.problem}`).join('\n  ')}`,
          ).toEqual({ missed: [], extra: [], ordered: true });
        }),
        runs(20, propertyTimeout(240_000)),
      );
    },
    propertyTimeout(240_000),
  );
});

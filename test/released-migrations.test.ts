import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR } from '../src/db/migrate.js';

/*
 * A migration a database has applied is never applied again: a file edited or renamed after some
 * database ran it leaves that database unlike a fresh one, for good. Review DP upgraded a database
 * from each commit that touched migrations/: every release upgraded cleanly, but builds between
 * them did not (0009 and 0010 edited in place, 0017 renamed, 0020's fix never reaching databases
 * migrated before it). So each file, once released, is held to its content here: a change goes in
 * a new migration. A new file is added to this list when it is committed (CI requires it), and
 * may be amended, its line with it, until a release (a landed session) carries it.
 */
const RELEASED: ReadonlyArray<readonly [string, string]> = [
  ['0001_initial.sql', '6da5cb5547e08259fe7be860621c4b529404b1ebab21093824498ae684c4116f'],
  ['0002_history.sql', '580c2b267335a8e7c9a058335d0858831df4c0d14f016778c60ce95a2b366e89'],
  ['0003_reader_role.sql', '4fae764b6b66488ce4aa588c643f3de0e41eb0e953c4f470455e012d3de282a1'],
  ['0004_bulk_tables_without_row_triggers.sql', 'fe4096cc8a64910291da1d56f375eaef0fcab7914a5172f7c1e65d73b6821045'],
  ['0005_insert_diffs_from_history.sql', '0f71b1dceb228ba2e441386f81b05a8d2eaf53edf1e53643f3cb06118ce7f5bc'],
  ['0006_run_effective_time.sql', '01e9d3e3804f74261e8690d61fc80a94fb11749d18c8e834abac7dafa5f10ac0'],
  ['0007_user_ids_assigned_by_the_sync.sql', 'a400839adf0809477fb289c50be5e7ab91ccd31cbc1000e46b4b9cc67f60c855'],
  ['0008_group_history.sql', '2480bc37f61b687eb9d2b7b14d4267d52316bb5b683626be8ff914ca69b8c099'],
  ['0009_commit_order.sql', '70ffd7c134212b052e830041b4d2db16866c93ab3f3429cc97f3defb7278e81d'],
  ['0010_sites.sql', 'cba58df09f590c496735c8fa768b06924b533786ef6dc151b9871749fa17d373'],
  ['0011_alert_outbox.sql', '0682f38229d2811b374e5a722f666293a7ae945818fffa5058ca42fd36f93fa6'],
  ['0012_completeness_seals_erasures.sql', '7d5467ff879366bd64f7d8fd1593b972af74dfa54711b3e2eeebaf2747719a6b'],
  ['0013_personal_field_functions_inlined.sql', 'af4224c71eb199365170df7cbc7aac47fe54d83275e4c55353ad673f7e7d176e'],
  ['0014_seal_lines_with_fewer_copies.sql', '8434b1db0b6e294f3100b0f41cf46afeb054e790a1a21045fdd7749314b36db0'],
  ['0015_integration_users_index.sql', '04cdfbe52bc94aca1954afe5d70d165a751de67e027553cbfb6e377fa184f21c'],
  ['0016_diff_times_to_the_microsecond.sql', '8cf2db45e16453fa33cd585508a8d0835b2c0238a334d23fa5157db4c42ea9b7'],
  ['0017_commit_order_table_lock.sql', '6785cbb69b5c7cafaf7090012b42f71754218ce0dc4e2793b54fafa71618510a'],
  ['0018_insert_diffs_name_custom_fields.sql', '03d55f94e29a8cfce67b0bcde130d275a5da0e965e1751e0f5e6b9d44dcdb8eb'],
  ['0019_administrators_with_proxy.sql', 'b56c7f6d0641246707c16572772a8d3161c450d659070403987e6fa43902071a'],
  ['0020_functions_immune_to_search_path.sql', 'dc482999ec355d44b5e6d4a1f16259e8238f859e172fa96bdafa40f62ce32607'],
  ['0021_site_cpq_url.sql', '146d61b815b2b67ba3f474230d7c5e25f191a784e3bdd82d24d3c277db924709'],
  ['0022_admin_rights_as_of.sql', '4371665e187f8b7779c5c80788e559b93c3635135be77c51a2c661aae9deef47'],
  ['0023_admin_rights_new_person_across_nulls.sql', 'a58999a7b8dcf52cb4dc26c6727d383905cb28971f524d3bcdc6045668e6a788'],
  ['0024_run_company_counts_latest_index.sql', 'c2ff4c39e2cfd9679a835d5caee88ddb9bc836813ac8d3776c743cb0635ed41b'],
  ['0025_sync_runs_site_time_indexes.sql', '9130495761087a9de15c10f8ed11b9d1acbe434b1bc889afb9603cbefbc7223b'],
  ['0026_user_lookup_by_login_indexes.sql', '2284446a4be1f394d2c6bde6a62785f313907c8079ba3a01bfeb1402a8ba4859'],
  ['0027_insert_diffs_inlined.sql', 'b5c69f2ee39f6a63c79afee200133658b27ad30f60b535f801deb902184f4f4c'],
  ['0028_administrators_groups_first.sql', 'a76549e35e1505b979f08af28805e679c27c5f18deadf650207097da614c4aa3'],
  ['0029_admin_rights_without_nested_loops.sql', 'a9338428fd6a280c32800f2d8ecc392772786c50a532a4eb565a26328c578b90'],
  ['0030_admin_rights_of_one_site.sql', '6436b5a0b7671e09e652e04c4ef089a035b68464e1c6567f23ffa8c4c4774169'],
  ['0031_run_progress.sql', '16bb044a35b82ecdb30660d31e7c440ed409a3a9e032f78786f597a7bfd7a784'],
  ['0032_seal_company_counts.sql', 'fe647140afc9dbfcfd687a872f81e3510d936afe66833c0f62e5f68cd63ccf9d'],
  ['0033_seal_nested_nulls.sql', '2b64dc2db057d988071cfa7337ef496de4ab6dab4a64a0b1386d629c135834b4'],
  ['0034_definer_functions_pg_temp_last.sql', '65b4209fc9ac0a70f9fa63f3991c71fa62cec87f95c9c2011ee42698d304c593'],
  ['0035_user_feed_fields.sql', 'e7fb72b00c17e4c798e19d7a3cc7fd2e72bda51d3c25ab0535bf875fa1193d2e'],
  ['0036_user_known_identity.sql', '773f6725b7dcb3626413177eee4ebd75a08a8ee238853698b221a00b5c831571'],
  ['0037_admin_rights_holder_by_merge_rule.sql', '9892f1521a488af79905ae39c8dcaaf382c07d6dbe2dbe545b94dd784ff9bd01'],
  ['0038_known_identity_from_history.sql', '6512e76206e66bfd6c894000b8e5e1a117fd1bd8fc27e59142c2cf9c056fdecd'],
  ['0039_custom_field_keys_folded_in_ascii.sql', '4c87dc85a169be5a8af88b2aaa29054ebd5493cc0eb4b309f3889d8e78557bea'],
  ['0040_personal_keys_folded_in_ascii.sql', '52ff892c64073f12bd9e5556d1cfd7d3f649168a0acee5d624a64075cf4e4691'],
  ['0041_administrator_groups_in_code_point_order.sql', 'c6d405ce110c737e7c0bedaabcdf9c4aa01708ab197ce203d9e7c6439f27056c'],
  ['0042_alert_outbox_site_without_default.sql', '6e960e0a2e80590baa712fdc8f865ae442ea8f478990391a23a8fd8171047f44'],
  ['0043_personal_keys_left_out_in_linear_time.sql', '3e0edc46f9306a02cbff4343b9547fa0aa120cca7e599f9b34070908a68767d6'],
  ['0044_run_commit_seq_at_start.sql', 'daa9693eb693496d8e23195e25e2c9a797f7aa8688ecfcb5d11443b3463709ab'],
  ['0045_alert_outbox_flood_cap.sql', 'c2fa8a4871680629b1793cea59a0a39b7e92b911959067b2bb83fa62df46aa52'],
  ['0046_alert_outbox_claimed_until.sql', 'f178465fe3ab36e05783a63ef85ca463ef954d4f594bb472639436c0c9a8a34d'],
];

describe('released migrations', () => {
  it('are unchanged, and every migration file is listed (a new one is added here when it is released)', () => {
    const files = readdirSync(MIGRATIONS_DIR)
      .filter((f) => f.endsWith('.sql'))
      .sort();
    const sha256 = (file: string) =>
      createHash('sha256')
        .update(readFileSync(join(MIGRATIONS_DIR, file)))
        .digest('hex');
    const released = new Map(RELEASED);
    // Named, with the line RELEASED needs for a new file: toEqual's diff of 30 pairs elides them.
    const unlisted = files.filter((f) => !released.has(f)).map((f) => `['${f}', '${sha256(f)}'],`);
    const changed = files.filter((f) => released.has(f) && released.get(f) !== sha256(f));
    const missing = RELEASED.map(([f]) => f).filter((f) => !files.includes(f));
    expect(
      { unlisted, changed, missing },
      'unlisted: add each line to RELEASED; changed or missing: restore the file, and put the change in a new migration',
    ).toEqual({
      unlisted: [],
      changed: [],
      missing: [],
    });
    expect(files.map((f) => [f, sha256(f)])).toEqual(RELEASED.map(([f, h]) => [f, h]));
  });
});

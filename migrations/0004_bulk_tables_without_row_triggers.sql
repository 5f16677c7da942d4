-- cpq-user-sync schema, version 4: no foreign keys on the tables a run writes one row per user,
-- membership or permission into.
--
-- Each foreign key is a trigger that looks the referenced row up once per written row; on a
-- first load of 100,000 users (300,000 memberships, 200,000 permissions) they took 4.5 s of a
-- 26 s merge. The sync is the only writer of these tables and writes them in one transaction
-- from rows it has just written itself; expectReferencesResolve (test/helpers) checks, after every
-- fault test and the deletion test, that every reference resolves. The history tables (written only for what
-- changed) keep theirs.
--
-- user_groups and user_access_permissions lose ON DELETE CASCADE with their foreign keys: the
-- sync never deletes a user (it marks it deleted), so nothing relied on it.

ALTER TABLE cpq.users DROP CONSTRAINT IF EXISTS users_first_seen_run_id_fkey;
ALTER TABLE cpq.users DROP CONSTRAINT IF EXISTS users_last_changed_run_id_fkey;
ALTER TABLE cpq.user_groups DROP CONSTRAINT IF EXISTS user_groups_user_id_fkey;
ALTER TABLE cpq.user_groups DROP CONSTRAINT IF EXISTS user_groups_group_variable_name_fkey;
ALTER TABLE cpq.user_access_permissions DROP CONSTRAINT IF EXISTS user_access_permissions_user_id_fkey;
ALTER TABLE cpq.user_changes DROP CONSTRAINT IF EXISTS user_changes_run_id_fkey;
ALTER TABLE cpq.user_changes DROP CONSTRAINT IF EXISTS user_changes_user_id_fkey;

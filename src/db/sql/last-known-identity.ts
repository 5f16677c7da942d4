/**
 * Who holds a login: CPQ dates a user's creation once (dateAdded) and gives it one id (cpq_id),
 * so a record sent with another value of either than the last one known of the stored user is
 * another user given the login (the former holder deleted, and no full read having seen it yet).
 * One rule for the merge (merge-plan.ts: the former holder's relations end), for a one-feed read
 * (integration-users.ts: nothing of the former holder's record is kept) and, over a whole
 * history, for cpq.admin_rights_as_of (migration 0030), which reads it the same way.
 */

/**
 * An SQL expression: the last `column` (date_added or cpq_id) known of `user` (a cpq.users
 * alias): its row's, else the latest of its versions that had one. A read without the field (a
 * CSV cell left empty, a sparse record) stores null, and the next holder must still be told apart
 * (review GJ). The versions are read only where the row's is null, by cpq.user_versions' (id,
 * valid_from) index.
 */
export const lastKnown = (user: string, column: 'date_added' | 'cpq_id') =>
  `coalesce(${user}.${column}, (SELECT v.${column} FROM cpq.user_versions v WHERE v.id = ${user}.id AND v.${column} IS NOT NULL ORDER BY v.valid_from DESC LIMIT 1))`;

/**
 * An SQL condition: whether the staged row `staged` (any alias with date_added and cpq_id) is of
 * another user than the stored `user` (a cpq.users alias, null where none): either value differs
 * from the last known. Never null.
 */
export const heldByAnother = (staged: string, user: string) =>
  (['date_added', 'cpq_id'] as const)
    .map((c) => `coalesce(CASE WHEN ${staged}.${c} IS NOT NULL AND ${user}.id IS NOT NULL THEN ${staged}.${c} <> ${lastKnown(user, c)} END, false)`)
    .join(' OR ');

/**
 * Who holds a login: CPQ dates a user's creation once (dateAdded) and gives it one id (cpq_id),
 * so a record sent with another value of either than the last one known of the login's current
 * holder is another user given the login (the former holder deleted, and no full read having seen
 * it yet). One rule for the merge (merge-plan.ts: the former holder's relations end) and for a
 * one-feed read (integration-users.ts: nothing of the former holder's record is kept).
 * cpq.admin_rights_as_of (migration 0037) reads a history by the same rule, running through a
 * user's versions where the merge keeps the last values in cpq.user_known_identity.
 */

/**
 * An SQL expression: the last `column` (date_added or cpq_id) known of the current holder of
 * `user` (a cpq.users alias): its row's, else the one cpq.user_known_identity keeps of it (a read
 * without the field, a CSV cell left empty, stores null: the value before it still counts, but
 * only the holder's own; review GJ, GL). Looked up by key, and only where the row's is null.
 */
export const lastKnown = (user: string, column: 'date_added' | 'cpq_id') =>
  `coalesce(${user}.${column}, (SELECT k.${column} FROM cpq.user_known_identity k WHERE k.user_id = ${user}.id))`;

/**
 * An SQL condition: whether the staged row `staged` (any alias with date_added and cpq_id) is of
 * another user than the stored `user` (a cpq.users alias, null where none): either value differs
 * from the last known. Never null.
 */
export const heldByAnother = (staged: string, user: string) =>
  (['date_added', 'cpq_id'] as const)
    .map((c) => `coalesce(CASE WHEN ${staged}.${c} IS NOT NULL AND ${user}.id IS NOT NULL THEN ${staged}.${c} <> ${lastKnown(user, c)} END, false)`)
    .join(' OR ');

/**
 * An SQL expression: what cpq.user_known_identity keeps of `column` once the staged row `staged`
 * replaces the stored `user`: nothing where the row will hold the value itself, or where the
 * record starts afresh (`startsAfresh`, an SQL condition: a new holder, heldByAnother, none of the
 * former holder's being its own; or whatever else the caller counts so); else the last known.
 */
export const keptIdentity = (staged: string, user: string, startsAfresh: string, column: 'date_added' | 'cpq_id') =>
  `CASE WHEN ${staged}.${column} IS NOT NULL OR ${startsAfresh} THEN NULL ELSE ${lastKnown(user, column)} END`;

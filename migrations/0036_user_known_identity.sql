-- cpq-user-sync schema, version 36: the dateAdded and CPQ id last known of a login's holder.
--
-- CPQ dates a user's creation once and gives it one id, so a record of a stored login with another
-- dateAdded or CPQ id than the last one known of its holder is another user given the login
-- (README, One-feed fields; src/db/sql/last-known-identity.ts). A read may send either as null (an
-- empty CSV cell, a sparse record), and the row then holds null: the value known before it must
-- still count, but only the holder's own. Taken from the row's versions, each column's last value
-- could be a former holder's while the other was already the new holder's, and the new holder,
-- sending the first, was read as a third person (review GL).
--
-- `date_added`, `cpq_id`: of the user's current holder, the last value a read sent, where the row's
-- own column is null (a row whose column holds a value needs no entry for it; a user with neither
-- needs no row). Written by the run, in its transaction, before it updates the user: a new holder
-- starts with none. Not personal data (a date and a number CPQ gives). A row stored before this
-- version whose last read sent null starts with none: until its holder sends the value again, a new
-- holder is told apart by the other column only.
-- No foreign key, as on every table keyed by a user (0004); the tests check that every row's user exists.

CREATE TABLE cpq.user_known_identity (
  user_id bigint PRIMARY KEY,
  site text NOT NULL,
  date_added timestamptz,
  cpq_id bigint
);

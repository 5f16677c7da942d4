-- cpq-user-sync schema, version 35: which of an integration user's fields each feed gave.
--
-- An integration user's row is merged from two feeds (README, One-feed fields), and a run may read
-- it from one alone: that read keeps what the other feed gave. Which feed gave a field no column
-- held, so a read of the integration feed alone kept every field of the stored record it left out:
-- a custom field the integration feed stopped sending stayed in `raw` for good, and a site sending
-- a new one in every run grew the row by a record per run. A read of the company feed alone kept
-- only the integration fields Oracle's samples name, and dropped any other the integration feed
-- had sent, logged as removed until that feed's next read.
--
-- `company_fields`, `integration_fields`: the top-level fields (canonical names of known fields,
-- the others as sent) of each feed's record at its last read of the user; null where not known (a
-- row stored before this version). A read of one feed keeps, of the stored record, the fields the
-- other feed's list names. A user without a row here (a company user, a row stored before this
-- version) is read as before. Written by the run, in its transaction, for the integration users it
-- stores; a row whose user is no integration user, or is deleted, is removed by the same run.
-- Field names only, never a value: nothing here is personal.
-- No foreign key, as on every table keyed by a user (0004): the one on users.id made each update of
-- a user check it; the sync never deletes a user, and the tests check that every row's user exists.

CREATE TABLE cpq.user_feed_fields (
  user_id bigint PRIMARY KEY,
  site text NOT NULL,
  company_fields text[],
  integration_fields text[]
);

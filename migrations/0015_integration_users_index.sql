-- cpq-user-sync schema, version 15: an index of the users stored as integration users.
--
-- A company read that does not hold a complete integration read asks once which of the company's
-- users are stored as integration users (src/db/sql/read-integration-user-logins.ts), so that it
-- can stage the others a slice at a time. Integration users are few: the index is small, and
-- writes of the other users never touch it.
CREATE INDEX users_integration_idx ON cpq.users (site, company_login, login) WHERE is_integration_user;

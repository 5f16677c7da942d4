-- cpq-user-sync schema, version 42: cpq.alert_outbox.site has no default, as every other table's
-- site column has none since the sites migration (0010).
--
-- 0011 created the outbox after 0010 with DEFAULT 'default' ("until the sites migration gives runs
-- a site", which had already come), and 0010's DROP DEFAULT list did not hold the outbox: an
-- insert that forgot the site filed its alert under 'default' instead of failing, which the
-- README's design section says no table allows (review GZ). Every release's insert names the site.

ALTER TABLE cpq.alert_outbox ALTER COLUMN site DROP DEFAULT;

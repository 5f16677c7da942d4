-- cpq-user-sync schema, version 19: cpq.administrators counts the proxy permission.
--
-- isProxyPermEnabled lets a user log in as other users: the admin_flag alert rule counts it as an
-- admin flag (src/db/sql/insert-alerts.ts ADMIN_FLAG_COLUMNS), but the view listed only users
-- with the user, access or application admin flag or an Administrator-type group, so a user
-- with the proxy permission alone was missing from it. The new column goes last: CREATE OR
-- REPLACE VIEW keeps the columns before it, their places and the grants on the view.

CREATE OR REPLACE VIEW cpq.administrators AS
SELECT u.id AS user_id, u.company_login, u.login, u.email, u.status_display,
       coalesce(u.is_user_admin_perm_enabled, false) AS is_user_admin,
       coalesce(u.is_access_admin_perm_enabled, false) AS is_access_admin,
       coalesce(u.is_application_admin_perm_enabled, false) AS is_application_admin,
       coalesce(array_agg(g.variable_name ORDER BY g.variable_name) FILTER (WHERE g.type = 'Administrator'), '{}') AS administrator_groups,
       u.site,
       coalesce(u.is_proxy_perm_enabled, false) AS is_proxy
FROM cpq.users u
LEFT JOIN cpq.user_groups ug ON ug.user_id = u.id
LEFT JOIN cpq.groups g ON g.site = u.site AND g.variable_name = ug.group_variable_name
WHERE u.deleted_at IS NULL
GROUP BY u.id
HAVING coalesce(u.is_user_admin_perm_enabled, false) OR coalesce(u.is_access_admin_perm_enabled, false)
    OR coalesce(u.is_application_admin_perm_enabled, false) OR coalesce(u.is_proxy_perm_enabled, false)
    OR bool_or(g.type = 'Administrator');

-- cpq-user-sync schema, version 41: cpq.administrators lists a user's Administrator-type groups
-- in code-point order, whatever the database's collation.
--
-- The view (0028) aggregated them ORDER BY variable_name, which follows the database's collation:
-- an en-US one listed {alpha,Beta} where a C one lists {Beta,alpha}, so the same state read
-- otherwise from another database (review GX). Every other list the product reads out is in
-- code-point order (the README's "Lists are in code-point order"). Same columns, same rows.

CREATE OR REPLACE VIEW cpq.administrators AS
SELECT u.id AS user_id, u.company_login, u.login, u.email, u.status_display,
       coalesce(u.is_user_admin_perm_enabled, false) AS is_user_admin,
       coalesce(u.is_access_admin_perm_enabled, false) AS is_access_admin,
       coalesce(u.is_application_admin_perm_enabled, false) AS is_application_admin,
       coalesce(a.administrator_groups, '{}'::text[]) AS administrator_groups,
       u.site,
       coalesce(u.is_proxy_perm_enabled, false) AS is_proxy
FROM cpq.users u
LEFT JOIN (SELECT ug.user_id, array_agg(g.variable_name ORDER BY g.variable_name COLLATE "C") AS administrator_groups
           FROM cpq.user_groups ug
           JOIN cpq.groups g ON g.site = ug.site AND g.variable_name = ug.group_variable_name AND g.type = 'Administrator'
           GROUP BY ug.user_id) a ON a.user_id = u.id
WHERE u.deleted_at IS NULL
  AND (coalesce(u.is_user_admin_perm_enabled, false) OR coalesce(u.is_access_admin_perm_enabled, false)
       OR coalesce(u.is_application_admin_perm_enabled, false) OR coalesce(u.is_proxy_perm_enabled, false) OR a.user_id IS NOT NULL);

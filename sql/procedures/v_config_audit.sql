-- Every change to the configuration, newest first: when, by which login (USER() of the
-- session, also through procedures), which table and row, which columns changed, and the
-- values before and after as JSON with passwords masked.
CREATE VIEW v_config_audit AS
SELECT id,
       at,
       login,
       table_name,
       action,
       row_key,
       changed,
       old_values,
       new_values
  FROM config_audit
 ORDER BY id DESC

-- A stored password as views and the audit trail show it: NULL stays NULL, a reference
-- (env:NAME, file:PATH) shows as itself since it holds no secret, a literal as ********.
CREATE FUNCTION masked_password(p_password VARCHAR(1024)) RETURNS VARCHAR(1024)
  DETERMINISTIC NO SQL SQL SECURITY INVOKER
RETURN CASE WHEN p_password IS NULL THEN NULL
            WHEN p_password REGEXP '^(env|file):' THEN p_password
            ELSE '********' END

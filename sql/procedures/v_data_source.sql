-- Data sources with their passwords masked: a literal shows as ********, a reference
-- (env:NAME, file:PATH) as itself, since it holds no secret.
CREATE VIEW v_data_source AS
SELECT d.name,
       d.kind,
       d.host,
       d.port,
       d.user,
       CASE WHEN d.password IS NULL THEN NULL
            WHEN d.password REGEXP '^(env|file):' THEN d.password
            ELSE '********' END AS password,
       (SELECT COUNT(DISTINCT p.channel_id) FROM pipeline p WHERE p.source_id = d.id OR p.target_id = d.id) AS channels,
       d.updated_at
  FROM data_source d

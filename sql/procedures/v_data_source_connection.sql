-- The live connections of running pipelines to their data sources, as the node that holds
-- each pipeline found them when it connected: encrypted or not, with the TLS version and
-- cipher. A connection counts as live while its pipeline's lease, under the same token, has
-- not lapsed.
CREATE VIEW v_data_source_connection AS
SELECT d.name AS data_source,
       p.name AS pipeline,
       c.role,
       c.node,
       c.tls_version IS NOT NULL AS encrypted,
       c.tls_version,
       c.tls_cipher,
       d.tls_mode,
       c.connected_at
  FROM data_source_connection c
  JOIN data_source d ON d.id = c.data_source_id
  JOIN pipeline p ON p.id = c.pipeline_id
  JOIN pipeline_lease l ON l.pipeline_id = c.pipeline_id
 WHERE l.token = c.token AND l.holder = c.node AND l.expires_at > NOW(6)

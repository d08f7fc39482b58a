-- Data sources with their passwords masked (a literal shows as ********, a reference
-- (env:NAME, file:PATH) as itself, since it holds no secret), their TLS settings, and their
-- live connections: how many running pipelines hold one now, how many of those are
-- encrypted, and each with its TLS version and cipher (v_data_source_connection lists them).
CREATE VIEW v_data_source AS
SELECT d.name,
       d.kind,
       d.host,
       d.port,
       d.user,
       masked_password(s.password) AS password,
       d.tls_mode,
       d.tls_ca_file,
       d.tls_cert_file,
       (SELECT COUNT(DISTINCT p.channel_id) FROM pipeline p WHERE p.source_id = d.id OR p.target_id = d.id) AS channels,
       (SELECT COUNT(*) FROM v_data_source_connection c WHERE c.data_source = d.name) AS connections,
       (SELECT COUNT(*) FROM v_data_source_connection c WHERE c.data_source = d.name AND c.encrypted) AS encrypted_connections,
       (SELECT GROUP_CONCAT(CONCAT(c.pipeline, ' ', c.role, ' on ', c.node, ': ',
                                   IF(c.encrypted, CONCAT(c.tls_version, ' ', c.tls_cipher), 'not encrypted'))
                            ORDER BY c.pipeline, c.role SEPARATOR '; ')
          FROM v_data_source_connection c WHERE c.data_source = d.name) AS live_connections,
       d.updated_at
  FROM data_source d
  LEFT JOIN ottr_secret.data_source_password s ON s.data_source_id = d.id

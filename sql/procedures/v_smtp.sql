-- The mail settings with the password masked (a literal as ********, a reference as itself):
-- what monitoring users read instead of the smtp table and the secrets schema.
CREATE VIEW v_smtp AS
SELECT m.host,
       m.port,
       m.security,
       m.user,
       masked_password(s.password) AS password,
       m.from_address,
       m.tls_ca_file,
       m.tls_cert_file,
       m.updated_at
  FROM smtp m
  LEFT JOIN ottr_secret.smtp_password s ON s.id = m.id

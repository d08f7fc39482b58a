-- Sets the certificates of the mail server's TLS (starttls or tls): p_ca_file, a PEM file on
-- the nodes its certificate must chain to (NULL: the public roots), and an optional client
-- certificate (p_cert_file, p_key_file: the key a path inside the node's --secrets-dir).
CREATE PROCEDURE set_smtp_tls(IN p_ca_file VARCHAR(1024), IN p_cert_file VARCHAR(1024),
                              IN p_key_file VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  IF NOT EXISTS (SELECT 1 FROM smtp WHERE id = 1) THEN
    CALL raise_error('no SMTP settings yet: CALL set_smtp(host, port, security, user, password, from_address) first');
  END IF;
  IF (NULLIF(p_cert_file, '') IS NULL) <> (NULLIF(p_key_file, '') IS NULL) THEN
    CALL raise_error('a client certificate needs both a certificate file and a key file');
  END IF;
  UPDATE smtp SET tls_ca_file = NULLIF(p_ca_file, ''), tls_cert_file = NULLIF(p_cert_file, ''),
    tls_key_file = NULLIF(p_key_file, '')
  WHERE id = 1;
END

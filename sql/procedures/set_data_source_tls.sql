-- Sets how nodes encrypt their connections to a data source: p_mode is disabled, preferred
-- (TLS when the server offers it, unverified), required (always TLS, unverified), verify_ca
-- (the certificate chains to p_ca_file, a PEM file on the nodes) or verify_identity (and
-- names the URL's host; without p_ca_file, the public roots). p_cert_file and p_key_file give
-- a client certificate; the key is a path inside the node's --secrets-dir.
CREATE PROCEDURE set_data_source_tls(IN p_name VARCHAR(1024), IN p_mode VARCHAR(1024),
                                     IN p_ca_file VARCHAR(1024), IN p_cert_file VARCHAR(1024),
                                     IN p_key_file VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED DEFAULT NULL;
  CALL data_source_id('', p_name, v_id);
  IF p_mode IS NULL OR LOWER(p_mode) NOT IN ('disabled', 'preferred', 'required', 'verify_ca', 'verify_identity') THEN
    CALL raise_error(CONCAT('unknown TLS mode ''', LEFT(COALESCE(p_mode, 'NULL'), 40),
      ''': use disabled, preferred, required, verify_ca or verify_identity'));
  END IF;
  IF LOWER(p_mode) = 'verify_ca' AND NULLIF(p_ca_file, '') IS NULL THEN
    CALL raise_error('TLS mode verify_ca needs a CA file (a PEM file on the nodes)');
  END IF;
  IF NULLIF(p_ca_file, '') IS NOT NULL AND LOWER(p_mode) NOT IN ('verify_ca', 'verify_identity') THEN
    CALL raise_error(CONCAT('a CA file is used only by verify_ca and verify_identity, not by ', LOWER(p_mode)));
  END IF;
  IF (NULLIF(p_cert_file, '') IS NULL) <> (NULLIF(p_key_file, '') IS NULL) THEN
    CALL raise_error('a client certificate needs both a certificate file and a key file');
  END IF;
  IF NULLIF(p_cert_file, '') IS NOT NULL AND LOWER(p_mode) = 'disabled' THEN
    CALL raise_error('a client certificate needs TLS: the mode is disabled');
  END IF;
  UPDATE data_source SET tls_mode = LOWER(p_mode), tls_ca_file = NULLIF(p_ca_file, ''),
    tls_cert_file = NULLIF(p_cert_file, ''), tls_key_file = NULLIF(p_key_file, '')
  WHERE id = v_id;
END

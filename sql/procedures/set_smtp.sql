-- Sets how the monitor sends mail: host, port, security ('none', 'starttls' or 'tls'), user
-- (NULL = no login), password (NULL, a literal, env:NAME or file:PATH, read by the node within
-- its allow-list; kept in the secrets schema) and the From address. A login needs starttls or
-- tls: it is never sent in clear.
-- It runs with its definer's rights (the migrating administrator's), so that operators set
-- passwords without being able to read the secrets schema.
CREATE PROCEDURE set_smtp(IN p_host VARCHAR(1024), IN p_port INT, IN p_security VARCHAR(1024),
                          IN p_user VARCHAR(1024), IN p_password VARCHAR(1024),
                          IN p_from VARCHAR(1024))
  SQL SECURITY DEFINER
BEGIN
  IF p_host IS NULL OR p_host NOT REGEXP '^[A-Za-z0-9_.:-]{1,255}$' THEN
    CALL raise_error(CONCAT('invalid SMTP host ''', LEFT(COALESCE(p_host, 'NULL'), 60), ''''));
  END IF;
  IF p_port IS NULL OR p_port NOT BETWEEN 1 AND 65535 THEN
    CALL raise_error(CONCAT('SMTP port must be from 1 to 65535, not ', COALESCE(p_port, 'NULL')));
  END IF;
  IF p_security IS NULL OR LOWER(p_security) NOT IN ('none', 'starttls', 'tls') THEN
    CALL raise_error(CONCAT('SMTP security must be none, starttls or tls, not ''', LEFT(COALESCE(p_security, 'NULL'), 30), ''''));
  END IF;
  IF p_user IS NULL AND p_password IS NOT NULL THEN
    CALL raise_error('an SMTP password needs a user');
  END IF;
  IF p_user IS NOT NULL AND LOWER(p_security) = 'none' THEN
    CALL raise_error('an SMTP login without TLS would send the password in clear: use starttls or tls');
  END IF;
  IF p_from IS NULL OR p_from NOT REGEXP '^[^@ ,<>]+@[^@ ,<>]+$' THEN
    CALL raise_error(CONCAT('invalid From address ''', LEFT(COALESCE(p_from, 'NULL'), 60), ''': use name@domain'));
  END IF;
  CALL check_password(p_password);
  INSERT INTO smtp (id, host, port, security, user, from_address)
  VALUES (1, p_host, p_port, LOWER(p_security), p_user, p_from)
  ON DUPLICATE KEY UPDATE host = p_host, port = p_port, security = LOWER(p_security), user = p_user,
    from_address = p_from;
  IF p_password IS NULL THEN
    DELETE FROM ottr_secret.smtp_password WHERE id = 1;
  ELSE
    INSERT INTO ottr_secret.smtp_password (id, password) VALUES (1, p_password)
    ON DUPLICATE KEY UPDATE password = p_password;
  END IF;
END

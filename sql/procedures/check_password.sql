-- Fails unless p_password is NULL, a literal, env:NAME or file:PATH. Never echoes a literal.
CREATE PROCEDURE check_password(IN p_password VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  IF p_password REGEXP '^env:' AND p_password NOT REGEXP '^env:[A-Za-z_][A-Za-z0-9_]*$' THEN
    CALL raise_error('a password starting with env: must be env:NAME (a letter or _, then letters, digits, _)');
  END IF;
  IF p_password REGEXP '^file:' AND CHAR_LENGTH(p_password) < 6 THEN
    CALL raise_error('password reference ''file:'' names no file: use file:PATH');
  END IF;
END

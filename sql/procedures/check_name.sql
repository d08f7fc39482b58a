-- Fails unless p_value is a usable name for a data source, channel or node:
-- 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit.
CREATE PROCEDURE check_name(IN p_what VARCHAR(32), IN p_value VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  IF p_value IS NULL OR p_value NOT REGEXP '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' THEN
    CALL raise_error(CONCAT('invalid ', p_what, ' name ''', LEFT(COALESCE(p_value, 'NULL'), 40),
      ''': use 1-64 letters, digits, _ . - (starting with a letter or digit)'));
  END IF;
END

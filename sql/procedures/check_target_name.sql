-- Fails unless p_value is NULL (same as the source) or an exact name of at most 64 characters.
CREATE PROCEDURE check_target_name(IN p_what VARCHAR(32), IN p_value VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  IF p_value = '' OR CHAR_LENGTH(p_value) > 64 OR p_value REGEXP '[*?+|(){}$^.\\[\\]\\\\`]' THEN
    CALL raise_error(CONCAT('target ', p_what, ' ''', LEFT(p_value, 60),
      ''' must be an exact name of 1-64 characters, or NULL'));
  END IF;
END

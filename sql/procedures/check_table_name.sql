-- Fails unless p_value is a usable source schema/table name: an exact name, or (when it has
-- any of *?+|(){}[]$^.\) a regex this database can compile. The node checks it again with
-- Rust's regex, whose syntax is authoritative.
CREATE PROCEDURE check_table_name(IN p_what VARCHAR(32), IN p_value VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_ok BOOLEAN;
  IF p_value IS NULL OR p_value = '' THEN
    CALL raise_error(CONCAT('the source ', p_what, ' name is empty'));
  END IF;
  IF CHAR_LENGTH(p_value) > 255 THEN
    CALL raise_error(CONCAT('the source ', p_what, ' pattern is longer than 255 characters'));
  END IF;
  IF p_value REGEXP '[*?+|(){}$^.\\[\\]\\\\]' THEN
    CALL regex_compiles(p_value, v_ok);
    IF NOT v_ok THEN
      CALL raise_error(CONCAT('invalid ', p_what, ' regex ''', LEFT(p_value, 60), ''''));
    END IF;
  ELSEIF CHAR_LENGTH(p_value) > 64 THEN
    CALL raise_error(CONCAT('source ', p_what, ' name ''', LEFT(p_value, 40), '…'' is longer than 64 characters'));
  END IF;
END

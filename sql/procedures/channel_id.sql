-- The id of channel p_name, or an error naming it.
CREATE PROCEDURE channel_id(IN p_name VARCHAR(1024), OUT p_id INT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  SET p_id = NULL;
  SELECT id INTO p_id FROM channel WHERE name = p_name;
  IF p_id IS NULL THEN
    CALL raise_error(CONCAT('unknown channel ''', LEFT(COALESCE(p_name, 'NULL'), 64), ''''));
  END IF;
END

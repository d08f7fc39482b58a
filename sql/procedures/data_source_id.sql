-- The id of data source p_name, or an error naming it; p_role ('source ', 'target ' or '')
-- says which one a procedure was looking for.
CREATE PROCEDURE data_source_id(IN p_role VARCHAR(16), IN p_name VARCHAR(1024), OUT p_id INT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  SET p_id = NULL;
  SELECT id INTO p_id FROM data_source WHERE name = p_name;
  IF p_id IS NULL THEN
    CALL raise_error(CONCAT('unknown ', p_role, 'data source ''', LEFT(COALESCE(p_name, 'NULL'), 64), ''''));
  END IF;
END

-- Changes a node-wide setting (see the setting table for names, units and bounds).
CREATE PROCEDURE set_setting(IN p_name VARCHAR(1024), IN p_value BIGINT)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_min BIGINT DEFAULT NULL;
  DECLARE v_max BIGINT DEFAULT NULL;
  SELECT min_value, max_value INTO v_min, v_max FROM setting WHERE name = p_name;
  IF v_min IS NULL THEN
    CALL raise_error(CONCAT('unknown setting ''', LEFT(COALESCE(p_name, 'NULL'), 40), ''' (SELECT name FROM setting lists them)'));
  END IF;
  IF p_value IS NULL OR p_value NOT BETWEEN v_min AND v_max THEN
    CALL raise_error(CONCAT('setting ', p_name, ' must be between ', v_min, ' and ', v_max, ', not ', COALESCE(p_value, 'NULL')));
  END IF;
  UPDATE setting SET value = p_value WHERE name = p_name;
END

-- The id of the alarm rule named p_name; fails naming it when there is none.
CREATE PROCEDURE alarm_rule_id(IN p_name VARCHAR(1024), OUT p_id INT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  SET p_id = NULL;
  SELECT id INTO p_id FROM alarm_rule WHERE name = p_name;
  IF p_id IS NULL THEN
    CALL raise_error(CONCAT('unknown alarm rule ''', LEFT(COALESCE(p_name, 'NULL'), 64), ''' (SELECT * FROM v_alarm_rule lists them)'));
  END IF;
END

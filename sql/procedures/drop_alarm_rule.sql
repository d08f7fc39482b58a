-- Drops an alarm rule with its windows, alerts and their mail.
CREATE PROCEDURE drop_alarm_rule(IN p_name VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL alarm_rule_id(p_name, v_id);
  DELETE FROM alarm_rule WHERE id = v_id;
END

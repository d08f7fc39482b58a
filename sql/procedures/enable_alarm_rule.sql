-- Enables an alarm rule (also one that is paused or disabled).
CREATE PROCEDURE enable_alarm_rule(IN p_name VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL alarm_rule_id(p_name, v_id);
  UPDATE alarm_rule SET status = 'enabled', paused_until = NULL WHERE id = v_id;
END

-- Disables an alarm rule and resolves its open alerts (without mail).
CREATE PROCEDURE disable_alarm_rule(IN p_name VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL alarm_rule_id(p_name, v_id);
  UPDATE alarm_rule SET status = 'disabled', paused_until = NULL WHERE id = v_id;
  UPDATE alert SET state = 'resolved', open_scope = NULL, resolved_at = NOW(6)
   WHERE rule_id = v_id AND state = 'open';
END

-- Pauses an alarm rule for p_minutes (NULL = until enable_alarm_rule). A paused rule checks
-- nothing, raises nothing and resolves nothing; its open alerts stay open.
CREATE PROCEDURE pause_alarm_rule(IN p_name VARCHAR(1024), IN p_minutes INT)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  CALL alarm_rule_id(p_name, v_id);
  IF p_minutes IS NOT NULL AND p_minutes NOT BETWEEN 1 AND 525600 THEN
    CALL raise_error(CONCAT('pause minutes must be from 1 to 525600 or NULL, not ', p_minutes));
  END IF;
  UPDATE alarm_rule SET status = 'paused',
    paused_until = IF(p_minutes IS NULL, NULL, NOW(6) + INTERVAL p_minutes MINUTE) WHERE id = v_id;
END

-- Limits an alarm rule to a time window (UTC): p_days a comma-separated list of mon..sun (or
-- 'all'), from and to as hh:mm. A window whose end is before its start runs past midnight.
-- A rule with windows is checked only inside one of them.
CREATE PROCEDURE add_alarm_window(IN p_rule VARCHAR(1024), IN p_days VARCHAR(1024),
                                  IN p_from VARCHAR(1024), IN p_to VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_id INT UNSIGNED;
  DECLARE v_days VARCHAR(64);
  CALL alarm_rule_id(p_rule, v_id);
  SET v_days = IF(LOWER(p_days) = 'all', 'mon,tue,wed,thu,fri,sat,sun', LOWER(REPLACE(p_days, ' ', '')));
  IF v_days IS NULL OR v_days NOT REGEXP '^(mon|tue|wed|thu|fri|sat|sun)(,(mon|tue|wed|thu|fri|sat|sun))*$' THEN
    CALL raise_error(CONCAT('invalid days ''', LEFT(COALESCE(p_days, 'NULL'), 40), ''': use mon,tue,... or all'));
  END IF;
  IF p_from IS NULL OR p_from NOT REGEXP '^([01]?[0-9]|2[0-3]):[0-5][0-9]$' THEN
    CALL raise_error(CONCAT('invalid window start ''', LEFT(COALESCE(p_from, 'NULL'), 20), ''': use hh:mm (UTC)'));
  END IF;
  IF p_to IS NULL OR p_to NOT REGEXP '^(([01]?[0-9]|2[0-3]):[0-5][0-9]|24:00)$' THEN
    CALL raise_error(CONCAT('invalid window end ''', LEFT(COALESCE(p_to, 'NULL'), 20), ''': use hh:mm (UTC)'));
  END IF;
  INSERT INTO alarm_window (rule_id, days, from_time, to_time)
  VALUES (v_id, v_days, CAST(p_from AS TIME), IF(p_to = '24:00', CAST('23:59:59' AS TIME), CAST(p_to AS TIME)));
END

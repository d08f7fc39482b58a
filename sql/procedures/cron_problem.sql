-- What is wrong with a cron expression, or NULL when its form is right: 6 fields (sec min
-- hour day-of-month month day-of-week, day-of-week 1-7 with 1 = Sunday), an optional 7th
-- (year), or the 5 unix fields (min hour day-of-month month day-of-week, 0 or 7 = Sunday).
-- Each field is *, ?, a value, a range a-b, a step (*/n, a/n, a-b/n) or a list of these;
-- months and days may be named (JAN, MON). Nodes check again with their cron parser.
CREATE FUNCTION cron_problem(p_expr VARCHAR(1024)) RETURNS VARCHAR(255)
  DETERMINISTIC NO SQL SQL SECURITY INVOKER
BEGIN
  DECLARE v_expr VARCHAR(1024);
  DECLARE v_count INT;
  DECLARE v_index INT DEFAULT 1;
  DECLARE v_field VARCHAR(1024);
  DECLARE v_value VARCHAR(255);
  DECLARE v_name VARCHAR(32);
  DECLARE v_offset INT DEFAULT 0;
  IF p_expr IS NULL OR TRIM(p_expr) = '' THEN
    RETURN 'a cron expression is required, e.g. ''0 * * * * *'' (every minute)';
  END IF;
  SET v_expr = REGEXP_REPLACE(TRIM(p_expr), '[[:space:]]+', ' ');
  SET v_count = LENGTH(v_expr) - LENGTH(REPLACE(v_expr, ' ', '')) + 1;
  IF v_count NOT IN (5, 6, 7) THEN
    RETURN CONCAT('cron ''', LEFT(p_expr, 40), ''' has ', v_count, ' fields: use 6 (sec min hour dom month dow) or 5 (unix)');
  END IF;
  IF v_count = 5 THEN
    SET v_offset = 1;
    IF SUBSTRING_INDEX(SUBSTRING_INDEX(v_expr, ' ', 3), ' ', -1) NOT IN ('*', '?')
       AND SUBSTRING_INDEX(v_expr, ' ', -1) NOT IN ('*', '?') THEN
      RETURN CONCAT('cron ''', LEFT(p_expr, 40), ''' restricts both day of month and day of week: keep one of them *');
    END IF;
  END IF;
  WHILE v_index <= v_count DO
    SET v_field = SUBSTRING_INDEX(SUBSTRING_INDEX(v_expr, ' ', v_index), ' ', -1);
    CASE v_index + v_offset
      WHEN 1 THEN SET v_name = 'second', v_value = '[0-5]?[0-9]';
      WHEN 2 THEN SET v_name = 'minute', v_value = '[0-5]?[0-9]';
      WHEN 3 THEN SET v_name = 'hour', v_value = '([01]?[0-9]|2[0-3])';
      WHEN 4 THEN SET v_name = 'day of month', v_value = '(0?[1-9]|[12][0-9]|3[01])';
      WHEN 5 THEN SET v_name = 'month', v_value = '(0?[1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)';
      WHEN 6 THEN SET v_name = 'day of week', v_value = IF(v_count = 5, '([0-7]|sun|mon|tue|wed|thu|fri|sat)', '([1-7]|sun|mon|tue|wed|thu|fri|sat)');
      ELSE SET v_name = 'year', v_value = '[0-9]{4}';
    END CASE;
    SET v_value = CONCAT('(\\*|\\?|', v_value, '(-', v_value, ')?)(/[0-9]{1,4})?');
    IF v_field NOT REGEXP CONCAT('(?i)^', v_value, '(,', v_value, ')*$') THEN
      RETURN CONCAT('cron ''', LEFT(p_expr, 40), ''': ', v_name, ' field ''', LEFT(v_field, 20), ''' is not valid',
        IF(v_index + v_offset = 6 AND v_count > 5, ' (6-field day of week is 1-7, 1 = Sunday)', ''));
    END IF;
    SET v_index = v_index + 1;
  END WHILE;
  RETURN NULL;
END

-- Adds an alarm rule. kind: lag (threshold: seconds behind), no_progress (seconds without
-- moving while the source moves), pipeline_error (seconds in error or retrying, 0 = at once),
-- node_dead (seconds past its lease), error_text (threshold: a regular expression matched
-- against the messages of error events), binlog_retention (the position within this many binlog
-- files of the oldest one the source keeps), conflicts (more than this many conflicts in the
-- last minute, two-way channels), copy_failed (a table of an online copy failed; threshold
-- NULL or 0), verify_mismatch (the last verification of a pipeline found differences not
-- repaired since; threshold NULL or 0). p_pipeline: a pipeline or channel name, or NULL
-- for every pipeline (node_dead: always NULL). cron: when to check (UTC, 6 fields, or 5 unix
-- fields). quiet_period_s: at most one mail per rule and scope in this time.
-- auto_recovery_after: restart the pipeline after this many checks in a row found the
-- condition (NULL = never).
CREATE PROCEDURE add_alarm_rule(IN p_name VARCHAR(1024), IN p_kind VARCHAR(1024),
                                IN p_pipeline VARCHAR(1024), IN p_threshold VARCHAR(1024),
                                IN p_cron VARCHAR(1024), IN p_recipients VARCHAR(1024),
                                IN p_quiet_period_s BIGINT, IN p_auto_recovery_after BIGINT)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_pipeline INT UNSIGNED DEFAULT NULL;
  DECLARE v_count INT;
  DECLARE v_threshold BIGINT UNSIGNED DEFAULT NULL;
  DECLARE v_pattern VARCHAR(255) DEFAULT NULL;
  DECLARE v_ok BOOLEAN;
  DECLARE v_problem VARCHAR(255);
  CALL check_name('alarm rule', p_name);
  IF EXISTS (SELECT 1 FROM alarm_rule WHERE name = p_name) THEN
    CALL raise_error(CONCAT('alarm rule ''', p_name, ''' already exists: drop_alarm_rule it first'));
  END IF;
  IF p_kind IS NULL OR p_kind NOT IN ('lag', 'no_progress', 'pipeline_error', 'node_dead', 'error_text', 'binlog_retention', 'conflicts', 'copy_failed', 'verify_mismatch') THEN
    CALL raise_error(CONCAT('unknown alarm kind ''', LEFT(COALESCE(p_kind, 'NULL'), 30),
      ''': use lag, no_progress, pipeline_error, node_dead, error_text, binlog_retention, conflicts, copy_failed, verify_mismatch'));
  END IF;
  IF p_pipeline IS NOT NULL THEN
    IF p_kind = 'node_dead' THEN
      CALL raise_error('a node_dead rule watches every node: give NULL as its pipeline');
    END IF;
    CALL pipeline_count(p_pipeline, v_count);
    IF v_count > 1 THEN
      CALL raise_error(CONCAT('''', LEFT(p_pipeline, 64), ''' has ', v_count, ' pipelines: add a rule per pipeline, or NULL for all'));
    END IF;
    SELECT p.id INTO v_pipeline FROM pipeline p JOIN channel c ON c.id = p.channel_id
     WHERE p.name = p_pipeline OR c.name = p_pipeline;
  END IF;
  IF p_kind = 'error_text' THEN
    IF p_threshold IS NULL OR p_threshold = '' OR LENGTH(p_threshold) > 255 THEN
      CALL raise_error('an error_text rule needs a pattern (a regular expression, at most 255 characters) as its threshold');
    END IF;
    CALL regex_compiles(p_threshold, v_ok);
    IF NOT v_ok THEN
      CALL raise_error(CONCAT('invalid error_text pattern ''', LEFT(p_threshold, 60), ''''));
    END IF;
    SET v_pattern = p_threshold;
  ELSEIF p_kind IN ('copy_failed', 'verify_mismatch') THEN
    IF COALESCE(p_threshold, '0') <> '0' THEN
      CALL raise_error(CONCAT('a ', p_kind, ' rule has no threshold: give NULL'));
    END IF;
  ELSE
    IF p_threshold IS NULL OR p_threshold NOT REGEXP '^[0-9]{1,9}$' THEN
      CALL raise_error(CONCAT('a ', p_kind, ' rule needs a whole number as its threshold (',
        CASE p_kind WHEN 'binlog_retention' THEN 'binlog files' WHEN 'conflicts' THEN 'conflicts per minute' ELSE 'seconds' END,
        '), not ''', LEFT(COALESCE(p_threshold, 'NULL'), 30), ''''));
    END IF;
    SET v_threshold = CAST(p_threshold AS UNSIGNED);
    IF p_kind IN ('lag', 'no_progress', 'binlog_retention') AND v_threshold = 0 THEN
      CALL raise_error(CONCAT('a ', p_kind, ' rule needs a threshold above 0'));
    END IF;
  END IF;
  SET v_problem = cron_problem(p_cron);
  IF v_problem IS NOT NULL THEN
    CALL raise_error(v_problem);
  END IF;
  CALL check_recipients(p_recipients);
  IF p_quiet_period_s IS NULL OR p_quiet_period_s NOT BETWEEN 0 AND 31536000 THEN
    CALL raise_error(CONCAT('quiet_period_s must be from 0 to 31536000 seconds, not ', COALESCE(p_quiet_period_s, 'NULL')));
  END IF;
  IF p_auto_recovery_after IS NOT NULL THEN
    IF p_auto_recovery_after NOT BETWEEN 1 AND 1000000 THEN
      CALL raise_error(CONCAT('auto_recovery_after must be from 1 to 1000000 checks or NULL, not ', p_auto_recovery_after));
    END IF;
    IF p_kind = 'node_dead' THEN
      CALL raise_error('auto-recovery restarts pipelines: a node_dead rule cannot have it');
    END IF;
  END IF;
  INSERT INTO alarm_rule (name, kind, pipeline_id, threshold, pattern, cron, recipients, quiet_period_s, auto_recovery_after)
  VALUES (p_name, p_kind, v_pipeline, v_threshold, v_pattern, TRIM(p_cron), p_recipients, p_quiet_period_s, p_auto_recovery_after);
END

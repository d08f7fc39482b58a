-- Installs the usual rules for every pipeline, mailing p_recipients (Otter's one-click
-- defaults, adapted): lag above 600 s, no progress for 600 s (auto-recovery after 3 checks),
-- a pipeline in error for 60 s, a node dead for 60 s, ERROR/EXCEPTION text in error events,
-- a position in the oldest binlog the source keeps, a failed online copy, and a verification
-- that found differences. Checked every minute (every 10 s for
-- errors and dead nodes). Rules that exist already are kept as they are.
CREATE PROCEDURE install_default_alarm_rules(IN p_recipients VARCHAR(1024))
  SQL SECURITY INVOKER
BEGIN
  CALL check_recipients(p_recipients);
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_lag') THEN
    CALL add_alarm_rule('default_lag', 'lag', NULL, '600', '0 * * * * *', p_recipients, 1800, NULL);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_no_progress') THEN
    CALL add_alarm_rule('default_no_progress', 'no_progress', NULL, '600', '0 * * * * *', p_recipients, 1800, 3);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_pipeline_error') THEN
    CALL add_alarm_rule('default_pipeline_error', 'pipeline_error', NULL, '60', '*/10 * * * * *', p_recipients, 1800, NULL);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_node_dead') THEN
    CALL add_alarm_rule('default_node_dead', 'node_dead', NULL, '60', '*/10 * * * * *', p_recipients, 1800, NULL);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_error_text') THEN
    CALL add_alarm_rule('default_error_text', 'error_text', NULL, '(?i)error|exception', '0 * * * * *', p_recipients, 1800, NULL);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_binlog_retention') THEN
    CALL add_alarm_rule('default_binlog_retention', 'binlog_retention', NULL, '1', '0 */5 * * * *', p_recipients, 21600, NULL);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_copy_failed') THEN
    CALL add_alarm_rule('default_copy_failed', 'copy_failed', NULL, NULL, '*/10 * * * * *', p_recipients, 1800, NULL);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM alarm_rule WHERE name = 'default_verify_mismatch') THEN
    CALL add_alarm_rule('default_verify_mismatch', 'verify_mismatch', NULL, NULL, '0 * * * * *', p_recipients, 3600, NULL);
  END IF;
END

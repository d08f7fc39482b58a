-- Alarm rules as the monitor sees them: settings, windows, when last and next checked, open
-- alerts, and the problem that keeps an invalid row from being used (NULL when valid).
CREATE VIEW v_alarm_rule AS
SELECT r.name,
       r.kind,
       COALESCE(p.name, '(all)') AS scope,
       COALESCE(CAST(r.threshold AS CHAR), r.pattern) AS threshold,
       r.cron,
       r.recipients,
       r.quiet_period_s,
       r.auto_recovery_after,
       CASE WHEN r.status = 'paused' AND r.paused_until <= NOW(6) THEN 'enabled' ELSE r.status END AS status,
       r.paused_until,
       (SELECT GROUP_CONCAT(CONCAT(w.days, ' ', TIME_FORMAT(w.from_time, '%H:%i'), '-', TIME_FORMAT(w.to_time, '%H:%i'))
                            ORDER BY w.id SEPARATOR '; ')
          FROM alarm_window w WHERE w.rule_id = r.id) AS windows_utc,
       st.checked_at,
       st.next_check_at,
       (SELECT COUNT(*) FROM alert a WHERE a.rule_id = r.id AND a.state = 'open') AS open_alerts,
       st.problem
  FROM alarm_rule r
  LEFT JOIN pipeline p ON p.id = r.pipeline_id
  LEFT JOIN alarm_rule_state st ON st.rule_id = r.id

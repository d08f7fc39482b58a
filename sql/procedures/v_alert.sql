-- Alerts, open ones first: which rule, about what, since when, what was measured, and whether
-- its mail went out.
CREATE VIEW v_alert AS
SELECT a.id,
       r.name AS rule,
       r.kind,
       a.scope,
       a.state,
       a.raised_at,
       a.resolved_at,
       CAST(TIMESTAMPDIFF(SECOND, a.raised_at, COALESCE(a.resolved_at, NOW(6))) AS SIGNED) AS duration_s,
       a.measured,
       a.first_measured,
       a.repeats,
       a.recoveries,
       (SELECT COUNT(*) FROM alert_mail m WHERE m.alert_id = a.id AND m.state = 'sent') AS mails_sent,
       (SELECT COUNT(*) FROM alert_mail m WHERE m.alert_id = a.id AND m.state = 'pending') AS mails_pending,
       a.mail_error
  FROM alert a
  JOIN alarm_rule r ON r.id = a.rule_id
 ORDER BY a.state = 'open' DESC, a.raised_at DESC

-- What is wrong now: every open alert, oldest first.
CREATE VIEW v_open_alerts AS
SELECT rule, kind, scope, raised_at, duration_s, measured, repeats, recoveries, mails_sent, mail_error
  FROM v_alert
 WHERE state = 'open'
 ORDER BY raised_at

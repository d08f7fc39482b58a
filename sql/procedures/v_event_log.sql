-- The event log, newest first, with pipeline names.
CREATE VIEW v_event_log AS
SELECT e.at, e.level, e.node, p.name AS pipeline, e.kind, e.message
  FROM event_log e
  LEFT JOIN pipeline p ON p.id = e.pipeline_id
 ORDER BY e.id DESC

-- Every conflict a two-way channel met: the row, both versions, and which one was kept.
CREATE VIEW v_conflicts AS
SELECT c.id,
       ch.name AS channel,
       p.name AS pipeline,
       c.table_name,
       c.row_key,
       c.kind,
       c.decision,
       c.policy,
       c.source_row,
       c.target_row,
       c.detected_at
  FROM conflict_log c
  LEFT JOIN pipeline p ON p.id = c.pipeline_id
  LEFT JOIN channel ch ON ch.id = p.channel_id

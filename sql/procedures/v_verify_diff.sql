-- The keys verifications found differing: the table, the key's values as text, the kind
-- (missing_on_target, extra_on_target, different, or unverified: it changed in every window it
-- was compared in), the columns whose values differ, when it was found, and how a repair went
-- (pending, repaired, still_different; NULL: not asked).
CREATE VIEW v_verify_diff AS
SELECT d.id,
       d.job_id AS job,
       p.name AS pipeline,
       d.source_schema AS schema_name,
       d.source_table AS table_name,
       d.row_key,
       d.kind,
       d.columns,
       d.detected_at,
       d.repair,
       d.repaired_at
  FROM verify_diff d
  JOIN verify_job j ON j.id = d.job_id
  JOIN pipeline p ON p.id = j.pipeline_id

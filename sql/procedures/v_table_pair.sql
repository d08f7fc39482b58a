-- The table pairs of each pipeline as a node resolves them: whether each source name is an
-- exact name or an anchored regex, and the target names with their defaults filled in.
CREATE VIEW v_table_pair AS
SELECT c.name AS channel,
       p.name AS pipeline,
       src.name AS source,
       t.source_schema,
       t.source_table,
       CASE WHEN t.source_schema REGEXP '[*?+|(){}$^.\\[\\]\\\\]'
              OR t.source_table REGEXP '[*?+|(){}$^.\\[\\]\\\\]' THEN 'regex' ELSE 'exact' END AS match_kind,
       tgt.name AS target,
       COALESCE(t.target_schema, t.source_schema) AS target_schema,
       COALESCE(t.target_table, t.source_table) AS target_table,
       (SELECT MIN(cp.mode) FROM column_pair cp WHERE cp.table_pair_id = t.id) AS column_mode,
       (SELECT COUNT(*) FROM column_pair cp WHERE cp.table_pair_id = t.id) AS column_pairs
  FROM table_pair t
  JOIN channel c ON c.id = t.channel_id
  JOIN pipeline p ON p.channel_id = c.id
  LEFT JOIN data_source src ON src.id = p.source_id
  LEFT JOIN data_source tgt ON tgt.id = p.target_id

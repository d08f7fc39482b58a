-- New pipelines load in 4 partitions of 10,000-row batches: on the benchmark's 2-core machine
-- that applied 100-change transactions 1.08x as fast as MariaDB's own SQL thread, where 8
-- partitions of 5,000 rows reached 0.90x (more partitions than cores cost the target more
-- CPU than they save). Existing pipelines keep their settings; raise load_parallelism with
-- set_pipeline_option on a target with more cores.
ALTER TABLE pipeline
  ALTER COLUMN load_parallelism SET DEFAULT 4,
  ALTER COLUMN batch_rows SET DEFAULT 10000;

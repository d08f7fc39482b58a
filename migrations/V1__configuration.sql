-- Configuration an operator writes: data sources, channels, pipelines, table and column pairs.
-- Every statement is IF NOT EXISTS: MySQL DDL is not transactional, so a migration that stopped
-- halfway must be able to run again.

CREATE TABLE IF NOT EXISTS data_source (
  id         INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name       VARCHAR(64)  NOT NULL,
  kind       ENUM('mysql','mariadb') NOT NULL,
  host       VARCHAR(255) NOT NULL,
  port       SMALLINT UNSIGNED NOT NULL DEFAULT 3306,
  user       VARCHAR(128) NOT NULL,
  password   VARCHAR(1024) NULL COMMENT 'NULL (none), a literal, env:NAME or file:PATH; never shown by the views',
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_data_source_name (name),
  CONSTRAINT ck_data_source_port CHECK (port > 0),
  CONSTRAINT ck_data_source_host CHECK (host <> '')
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS channel (
  id         INT UNSIGNED NOT NULL AUTO_INCREMENT,
  name       VARCHAR(64)  NOT NULL,
  mode       ENUM('one_way','two_way') NOT NULL DEFAULT 'one_way',
  desired    ENUM('stopped','running') NOT NULL DEFAULT 'stopped',
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_channel_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS pipeline (
  id               INT UNSIGNED NOT NULL AUTO_INCREMENT,
  channel_id       INT UNSIGNED NOT NULL,
  name             VARCHAR(130) NOT NULL,
  source_id        INT UNSIGNED NOT NULL,
  target_id        INT UNSIGNED NOT NULL,
  batch_rows       INT UNSIGNED NOT NULL DEFAULT 5000,
  batch_bytes      BIGINT UNSIGNED NOT NULL DEFAULT 16777216,
  batch_timeout_ms INT UNSIGNED NOT NULL DEFAULT 1000,
  load_parallelism SMALLINT UNSIGNED NOT NULL DEFAULT 8,
  ddl_sync         BOOLEAN NOT NULL DEFAULT TRUE,
  skip_ddl_errors  BOOLEAN NOT NULL DEFAULT FALSE,
  transactional    BOOLEAN NOT NULL DEFAULT FALSE COMMENT 'apply each source transaction atomically',
  server_id        INT UNSIGNED NULL COMMENT 'replica server id on the source; NULL means 1000000 + id',
  start_kind       ENUM('end','file','gtid','timestamp') NOT NULL DEFAULT 'end',
  start_file       VARCHAR(255) NULL,
  start_offset     BIGINT UNSIGNED NULL,
  start_gtid       TEXT NULL,
  start_time       DATETIME(6) NULL COMMENT 'UTC',
  created_at       TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at       TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_pipeline_name (name),
  KEY ix_pipeline_channel (channel_id),
  KEY ix_pipeline_source (source_id),
  KEY ix_pipeline_target (target_id),
  CONSTRAINT fk_pipeline_channel FOREIGN KEY (channel_id) REFERENCES channel (id) ON DELETE CASCADE,
  CONSTRAINT fk_pipeline_source FOREIGN KEY (source_id) REFERENCES data_source (id),
  CONSTRAINT fk_pipeline_target FOREIGN KEY (target_id) REFERENCES data_source (id),
  CONSTRAINT ck_pipeline_batch_rows CHECK (batch_rows BETWEEN 1 AND 1000000),
  CONSTRAINT ck_pipeline_batch_bytes CHECK (batch_bytes BETWEEN 1024 AND 4294967296),
  CONSTRAINT ck_pipeline_batch_timeout CHECK (batch_timeout_ms BETWEEN 1 AND 3600000),
  CONSTRAINT ck_pipeline_parallelism CHECK (load_parallelism BETWEEN 1 AND 256),
  CONSTRAINT ck_pipeline_start_file CHECK (start_kind <> 'file' OR (start_file IS NOT NULL AND start_offset >= 4)),
  CONSTRAINT ck_pipeline_start_gtid CHECK (start_kind <> 'gtid' OR start_gtid IS NOT NULL),
  CONSTRAINT ck_pipeline_start_time CHECK (start_kind <> 'timestamp' OR start_time IS NOT NULL)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS pipeline_node (
  pipeline_id INT UNSIGNED NOT NULL,
  node        VARCHAR(64) NOT NULL COMMENT 'a node allowed to run the pipeline; no rows means any node',
  PRIMARY KEY (pipeline_id, node),
  CONSTRAINT fk_pipeline_node_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS table_pair (
  id            INT UNSIGNED NOT NULL AUTO_INCREMENT,
  channel_id    INT UNSIGNED NOT NULL,
  source_schema VARCHAR(255) NOT NULL COMMENT 'exact name, or an anchored regex when it has any of *?+|(){}[]$^.\\',
  source_table  VARCHAR(255) NOT NULL COMMENT 'exact name, or an anchored regex when it has any of *?+|(){}[]$^.\\',
  target_schema VARCHAR(64) NULL COMMENT 'NULL: same as the source',
  target_table  VARCHAR(64) NULL COMMENT 'NULL: same as the source',
  created_at    TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  UNIQUE KEY uk_table_pair (channel_id, source_schema, source_table),
  CONSTRAINT fk_table_pair_channel FOREIGN KEY (channel_id) REFERENCES channel (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS column_pair (
  id            INT UNSIGNED NOT NULL AUTO_INCREMENT,
  table_pair_id INT UNSIGNED NOT NULL,
  mode          ENUM('include','exclude') NOT NULL,
  source_column VARCHAR(64) NOT NULL,
  target_column VARCHAR(64) NULL COMMENT 'rename on the target (include only); NULL: same name',
  PRIMARY KEY (id),
  UNIQUE KEY uk_column_pair (table_pair_id, source_column),
  CONSTRAINT fk_column_pair_table_pair FOREIGN KEY (table_pair_id) REFERENCES table_pair (id) ON DELETE CASCADE,
  CONSTRAINT ck_column_pair_rename CHECK (mode = 'include' OR target_column IS NULL)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Security (issue #9): TLS settings of data sources and of the mail server, passwords moved
-- out of this schema into `<schema>_secret` (which monitoring users cannot read), an audit
-- trail of configuration changes (its triggers are re-created by every migrate), and how each
-- running pipeline's connections are encrypted.
--
-- Every step can run again after a failure halfway: the secrets schema first (it needs the
-- CREATE privilege, the most likely to be missing), then each ALTER only while its column is
-- missing, the passwords dropped from this schema only after they were copied.

SET @ottr_self = CONCAT('`', REPLACE(DATABASE(), '`', '``'), '`');
SET @ottr_secret = CONCAT('`', REPLACE(CONCAT(DATABASE(), '_secret'), '`', '``'), '`');

SET @ottr_step = CONCAT('CREATE DATABASE IF NOT EXISTS ', @ottr_secret,
  ' CHARACTER SET utf8mb4 COLLATE utf8mb4_bin');
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;

SET @ottr_step = CONCAT('CREATE TABLE IF NOT EXISTS ', @ottr_secret, '.data_source_password (
  data_source_id INT UNSIGNED NOT NULL,
  password       VARCHAR(1024) NOT NULL COMMENT ''a literal, env:NAME or file:PATH (resolved by the node within its allow-list)'',
  updated_at     TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (data_source_id),
  CONSTRAINT fk_data_source_password FOREIGN KEY (data_source_id)
    REFERENCES ', @ottr_self, '.data_source (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin');
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;

SET @ottr_step = CONCAT('CREATE TABLE IF NOT EXISTS ', @ottr_secret, '.smtp_password (
  id         TINYINT UNSIGNED NOT NULL DEFAULT 1,
  password   VARCHAR(1024) NOT NULL COMMENT ''a literal, env:NAME or file:PATH (resolved by the node within its allow-list)'',
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  PRIMARY KEY (id),
  CONSTRAINT fk_smtp_password FOREIGN KEY (id) REFERENCES ', @ottr_self, '.smtp (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin');
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;

-- The passwords: copied (again, after a failure halfway) while this schema still has them,
-- then dropped here.
SET @ottr_has = (SELECT COUNT(*) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'data_source' AND COLUMN_NAME = 'password');
SET @ottr_step = IF(@ottr_has = 0, 'DO 0', CONCAT('INSERT INTO ', @ottr_secret,
  '.data_source_password (data_source_id, password) SELECT id, password FROM ', @ottr_self,
  '.data_source WHERE password IS NOT NULL ON DUPLICATE KEY UPDATE password = VALUES(password)'));
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;
SET @ottr_step = IF(@ottr_has = 0, 'DO 0', 'ALTER TABLE data_source DROP COLUMN password');
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;

SET @ottr_has = (SELECT COUNT(*) FROM information_schema.COLUMNS
  WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'smtp' AND COLUMN_NAME = 'password');
SET @ottr_step = IF(@ottr_has = 0, 'DO 0', CONCAT('INSERT INTO ', @ottr_secret,
  '.smtp_password (id, password) SELECT id, password FROM ', @ottr_self,
  '.smtp WHERE password IS NOT NULL ON DUPLICATE KEY UPDATE password = VALUES(password)'));
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;
SET @ottr_step = IF(@ottr_has = 0, 'DO 0', 'ALTER TABLE smtp DROP COLUMN password');
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;

-- TLS settings: each table's in one ALTER, run while its first column is missing.
SET @ottr_step = IF((SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'data_source' AND COLUMN_NAME = 'tls_mode') > 0,
  'DO 0',
  'ALTER TABLE data_source
    ADD COLUMN tls_mode ENUM(''disabled'',''preferred'',''required'',''verify_ca'',''verify_identity'')
      NOT NULL DEFAULT ''preferred''
      COMMENT ''preferred: TLS when the server offers it, unverified (an attacker on the path can strip it); required: always TLS, unverified; verify_ca: the certificate chains to tls_ca_file; verify_identity: and names the host''
      AFTER user,
    ADD COLUMN tls_ca_file VARCHAR(1024) NULL
      COMMENT ''PEM file of the CA(s) the server certificate must chain to (read by the node)'' AFTER tls_mode,
    ADD COLUMN tls_cert_file VARCHAR(1024) NULL
      COMMENT ''PEM client certificate (chain) the node presents'' AFTER tls_ca_file,
    ADD COLUMN tls_key_file VARCHAR(1024) NULL
      COMMENT ''PEM private key of tls_cert_file: a path resolved within the node''''s --secrets-dir'' AFTER tls_cert_file,
    ADD CONSTRAINT ck_data_source_tls_client CHECK ((tls_cert_file IS NULL) = (tls_key_file IS NULL)),
    ADD CONSTRAINT ck_data_source_tls_ca CHECK (tls_mode <> ''verify_ca'' OR tls_ca_file IS NOT NULL)');
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;

SET @ottr_step = IF((SELECT COUNT(*) FROM information_schema.COLUMNS
    WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'smtp' AND COLUMN_NAME = 'tls_ca_file') > 0,
  'DO 0',
  'ALTER TABLE smtp
    ADD COLUMN tls_ca_file VARCHAR(1024) NULL
      COMMENT ''PEM file of the CA(s) the mail server certificate must chain to; NULL: the public roots'' AFTER security,
    ADD COLUMN tls_cert_file VARCHAR(1024) NULL COMMENT ''PEM client certificate'' AFTER tls_ca_file,
    ADD COLUMN tls_key_file VARCHAR(1024) NULL
      COMMENT ''its private key: a path resolved within the node''''s --secrets-dir'' AFTER tls_cert_file,
    ADD CONSTRAINT ck_smtp_tls_client CHECK ((tls_cert_file IS NULL) = (tls_key_file IS NULL))');
PREPARE ottr_step FROM @ottr_step;
EXECUTE ottr_step;
DEALLOCATE PREPARE ottr_step;

CREATE TABLE IF NOT EXISTS config_audit (
  id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  at         TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  login      VARCHAR(400) NOT NULL COMMENT 'USER(): the login of the session that made the change (not a procedure''s definer)',
  table_name VARCHAR(64) NOT NULL,
  action     ENUM('insert','update','delete') NOT NULL,
  row_key    VARCHAR(255) NOT NULL COMMENT 'the changed row''s key',
  changed    VARCHAR(1024) NULL COMMENT 'update: the columns whose values changed',
  old_values LONGTEXT NULL COMMENT 'JSON of the row before, passwords masked',
  new_values LONGTEXT NULL COMMENT 'JSON of the row after, passwords masked',
  PRIMARY KEY (id),
  KEY ix_config_audit_at (at),
  KEY ix_config_audit_table (table_name, row_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- How each running pipeline's connections to its data sources are encrypted, as its node
-- found them (v_data_source_connection shows those of live leases).
CREATE TABLE IF NOT EXISTS data_source_connection (
  pipeline_id    INT UNSIGNED NOT NULL,
  role           ENUM('source','target') NOT NULL,
  data_source_id INT UNSIGNED NOT NULL,
  node           VARCHAR(64) NOT NULL,
  token          BIGINT UNSIGNED NOT NULL COMMENT 'the lease''s fencing token when it connected',
  tls_version    VARCHAR(32) NULL COMMENT 'NULL: not encrypted',
  tls_cipher     VARCHAR(128) NULL,
  connected_at   TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (pipeline_id, role),
  CONSTRAINT fk_data_source_connection_pipeline FOREIGN KEY (pipeline_id) REFERENCES pipeline (id) ON DELETE CASCADE,
  CONSTRAINT fk_data_source_connection_source FOREIGN KEY (data_source_id) REFERENCES data_source (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

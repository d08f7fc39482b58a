-- One row naming this metadata schema: pipelines write their applied positions on targets
-- under this id, so that two ottr installations sharing a target never mix them up.
CREATE TABLE IF NOT EXISTS installation (
  singleton  TINYINT UNSIGNED NOT NULL DEFAULT 1,
  id         CHAR(36) NOT NULL,
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (singleton),
  CONSTRAINT ck_installation_singleton CHECK (singleton = 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO installation (singleton, id) VALUES (1, UUID());

-- Changes the address or password of a data source. NULL keeps the current value; the
-- password '' removes it. Nodes pick the change up at their next configuration poll.
-- It runs with its definer's rights (the migrating administrator's), so that operators set
-- passwords without being able to read the secrets schema.
CREATE PROCEDURE set_data_source(IN p_name VARCHAR(1024), IN p_url VARCHAR(1024),
                                 IN p_password VARCHAR(1024))
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_id INT UNSIGNED DEFAULT NULL;
  DECLARE v_host VARCHAR(255);
  DECLARE v_port INT UNSIGNED;
  DECLARE v_user VARCHAR(128);
  SELECT id INTO v_id FROM data_source WHERE name = p_name;
  IF v_id IS NULL THEN
    CALL raise_error(CONCAT('unknown data source ''', LEFT(COALESCE(p_name, 'NULL'), 64), ''''));
  END IF;
  IF p_url IS NOT NULL THEN
    CALL parse_data_source_url(p_url, v_host, v_port, v_user);
    UPDATE data_source SET host = v_host, port = v_port, user = v_user WHERE id = v_id;
  END IF;
  IF p_password = '' THEN
    DELETE FROM ottr_secret.data_source_password WHERE data_source_id = v_id;
  ELSEIF p_password IS NOT NULL THEN
    CALL check_password(p_password);
    INSERT INTO ottr_secret.data_source_password (data_source_id, password) VALUES (v_id, p_password)
    ON DUPLICATE KEY UPDATE password = p_password;
  END IF;
END

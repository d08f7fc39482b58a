-- Registers a database endpoint. p_url is mysql://user@host[:port] (or mariadb://…);
-- p_password is NULL (none), a literal, env:NAME or file:PATH (read by the node, within its
-- allow-list); it is kept in the secrets schema. TLS starts as 'preferred'
-- (set_data_source_tls changes it).
-- It runs with its definer's rights (the migrating administrator's), so that operators set
-- passwords without being able to read the secrets schema.
CREATE PROCEDURE add_data_source(IN p_name VARCHAR(1024), IN p_kind VARCHAR(1024),
                                 IN p_url VARCHAR(1024), IN p_password VARCHAR(1024))
  SQL SECURITY DEFINER
BEGIN
  DECLARE v_host VARCHAR(255);
  DECLARE v_port INT UNSIGNED;
  DECLARE v_user VARCHAR(128);
  CALL check_name('data source', p_name);
  IF EXISTS (SELECT 1 FROM data_source WHERE name = p_name) THEN
    CALL raise_error(CONCAT('data source ''', p_name, ''' already exists'));
  END IF;
  IF p_kind IS NULL OR p_kind NOT IN ('mysql', 'mariadb') THEN
    CALL raise_error(CONCAT('unknown data source kind ''', LEFT(COALESCE(p_kind, 'NULL'), 40),
      ''': use mysql or mariadb'));
  END IF;
  CALL parse_data_source_url(p_url, v_host, v_port, v_user);
  CALL check_password(p_password);
  INSERT INTO data_source (name, kind, host, port, user)
  VALUES (p_name, p_kind, v_host, v_port, v_user);
  IF p_password IS NOT NULL THEN
    INSERT INTO ottr_secret.data_source_password (data_source_id, password)
    VALUES (LAST_INSERT_ID(), p_password);
  END IF;
END

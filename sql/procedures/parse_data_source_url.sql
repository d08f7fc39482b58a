-- Splits mysql://user@host[:port] (or mariadb://…) into its parts, or fails naming the URL.
-- A URL that carries a password is refused without echoing it.
CREATE PROCEDURE parse_data_source_url(IN p_url VARCHAR(1024), OUT p_host VARCHAR(255),
                                       OUT p_port INT UNSIGNED, OUT p_user VARCHAR(128))
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_rest VARCHAR(1024);
  DECLARE v_hostport VARCHAR(1024);
  DECLARE v_userinfo VARCHAR(1024) DEFAULT '';
  -- everything between :// and the last @ is user info; a ':' there is a password, which is
  -- never echoed, nor is any user info of a URL that is refused
  IF LOCATE('@', p_url) > 0 THEN
    SET v_rest = SUBSTRING(p_url, LOCATE('://', p_url) + IF(LOCATE('://', p_url) > 0, 3, 1));
    SET v_userinfo = LEFT(v_rest, CHAR_LENGTH(v_rest) - CHAR_LENGTH(SUBSTRING_INDEX(v_rest, '@', -1)) - 1);
    IF LOCATE(':', v_userinfo) > 0 THEN
      CALL raise_error('the data source URL holds a password: pass it as the password argument (a literal, env:NAME or file:PATH)');
    END IF;
  END IF;
  IF p_url IS NULL OR p_url NOT REGEXP '^(mysql|mariadb)://[^:@/?]+@[^:@/?]+(:[0-9]{1,5})?/?$' THEN
    CALL raise_error(CONCAT('data source URL ''', IF(LOCATE('@', COALESCE(p_url, '')) > 0,
      CONCAT(IF(LOCATE('://', p_url) > 0, CONCAT(LEFT(SUBSTRING_INDEX(p_url, '://', 1), 12), '://'), ''),
             '…@', LEFT(SUBSTRING_INDEX(p_url, '@', -1), 50)), LEFT(COALESCE(p_url, 'NULL'), 60)),
      ''' is not mysql://user@host[:port]'));
  END IF;
  SET v_rest = SUBSTRING(p_url, LOCATE('://', p_url) + 3);
  SET v_hostport = TRIM(TRAILING '/' FROM SUBSTRING_INDEX(v_rest, '@', -1));
  SET p_user = SUBSTRING_INDEX(v_rest, '@', 1);
  SET p_host = SUBSTRING_INDEX(v_hostport, ':', 1);
  SET p_port = 3306;
  IF LOCATE(':', v_hostport) > 0 THEN
    SET p_port = CAST(SUBSTRING_INDEX(v_hostport, ':', -1) AS UNSIGNED);
  END IF;
  IF p_port NOT BETWEEN 1 AND 65535 THEN
    CALL raise_error(CONCAT('data source port ', p_port, ' is not between 1 and 65535'));
  END IF;
END

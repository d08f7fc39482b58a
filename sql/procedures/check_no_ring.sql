-- Fails if a pipeline from data source p_source to p_target would close a ring of three or more
-- data sources (A>B>C>A). ottr tells its own writes apart from an application's by which
-- pipeline wrote them, so it stops echoes between two sites (A<>B) and along chains (A<>B>C),
-- but a change going round a ring of three would come back to where it started.
CREATE PROCEDURE check_no_ring(IN p_source INT UNSIGNED, IN p_target INT UNSIGNED)
  SQL SECURITY INVOKER
BEGIN
  DECLARE v_path VARCHAR(2048) DEFAULT NULL;
  SET v_path = (
    WITH RECURSIVE reach (site, hops, ids, names) AS (
      SELECT p.target_id, 1, CAST(CONCAT(',', p.source_id, ',', p.target_id, ',') AS CHAR(2048)),
             CAST(CONCAT(s.name, ' > ', t.name) AS CHAR(2048))
        FROM pipeline p
        JOIN data_source s ON s.id = p.source_id
        JOIN data_source t ON t.id = p.target_id
       WHERE p.source_id = p_target
      UNION ALL
      SELECT p.target_id, r.hops + 1, CONCAT(r.ids, p.target_id, ','), CONCAT(r.names, ' > ', t.name)
        FROM reach r
        JOIN pipeline p ON p.source_id = r.site
        JOIN data_source t ON t.id = p.target_id
       WHERE LOCATE(CONCAT(',', p.target_id, ','), r.ids) = 0 AND r.hops < 32
    )
    SELECT names FROM reach WHERE site = p_source AND hops >= 2 ORDER BY hops LIMIT 1);
  IF v_path IS NOT NULL THEN
    CALL raise_error(CONCAT('a ring of 3+ sites would form (', LEFT(v_path, 60),
      ' > back): ottr avoids loops only between two sites'));
  END IF;
END

-- title: Noncompliant instances by owner (latest run)
-- description: Per owner tag value in the most recent run: instances, noncompliant instances and compliance percentage; owners with nothing to fix are left out.
--
-- An instance without an owner tag (or with an empty one) is grouped under '(no owner)', as in
-- the run summary's noncompliant_by_owner.
WITH latest AS (
    SELECT dt, run
    FROM runs
    WHERE coalesce(source, 'scheduled') = 'scheduled'
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
)
SELECT
    coalesce(nullif(f.owner, ''), '(no owner)') AS owner,
    count(*) AS instances,
    sum(CASE WHEN f.compliant THEN 0 ELSE 1 END) AS noncompliant,
    round(100 * CAST(sum(CASE WHEN f.compliant THEN 1 ELSE 0 END) AS DOUBLE) / count(*), 2) AS compliance_percentage
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
GROUP BY 1
HAVING sum(CASE WHEN f.compliant THEN 0 ELSE 1 END) > 0
ORDER BY noncompliant DESC, owner

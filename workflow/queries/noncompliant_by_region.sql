-- title: Compliance by account and region (latest run)
-- description: Per account and region in the most recent run: instances, noncompliant instances and compliance percentage.
WITH latest AS (
    SELECT dt, run
    FROM runs
    WHERE coalesce(source, 'scheduled') = 'scheduled'
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
)
SELECT
    f.account_id,
    f.region,
    count(*) AS instances,
    sum(CASE WHEN f.compliant THEN 0 ELSE 1 END) AS noncompliant,
    round(100 * CAST(sum(CASE WHEN f.compliant THEN 1 ELSE 0 END) AS DOUBLE) / count(*), 2) AS compliance_percentage
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
GROUP BY f.account_id, f.region
ORDER BY noncompliant DESC, f.account_id, f.region

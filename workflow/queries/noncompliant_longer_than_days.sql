-- title: Resources noncompliant for more than N days
-- description: Instances (and volumes, snapshots, images, interfaces) noncompliant in the latest run whose current noncompliant streak (since their last compliant finding, or their first finding) is older than N days.
-- param: days (integer, default 30): report resources noncompliant for more than this many days
--
-- Reads the whole findings history (every dt partition still in S3 Standard, Standard-IA or
-- Glacier Instant Retrieval: all three are readable by Athena). The streak starts at the first
-- noncompliant day after the last compliant day; days are counted from the dt partition (UTC date).
-- A resource is its resource_id (instance_id in runs written before resource types existed).
WITH latest AS (
    SELECT dt, run
    FROM runs
    WHERE coalesce(source, 'scheduled') = 'scheduled'
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
),
current_noncompliant AS (
    SELECT
        f.account_id,
        f.region,
        coalesce(f.resource_type, 'instance') AS resource_type,
        coalesce(f.resource_id, f.instance_id) AS resource_id,
        f.name,
        f.owner,
        f.violations
    FROM findings AS f
    JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
    WHERE NOT f.compliant
),
last_compliant AS (
    SELECT account_id, region, coalesce(resource_id, instance_id) AS resource_id, max(dt) AS dt
    FROM findings
    WHERE compliant
    GROUP BY account_id, region, coalesce(resource_id, instance_id)
),
streak AS (
    SELECT f.account_id, f.region, c.resource_id, min(f.dt) AS since
    FROM findings AS f
    JOIN current_noncompliant AS c
        ON f.account_id = c.account_id AND f.region = c.region
        AND coalesce(f.resource_id, f.instance_id) = c.resource_id
    LEFT JOIN last_compliant AS lc
        ON f.account_id = lc.account_id AND f.region = lc.region AND c.resource_id = lc.resource_id
    WHERE NOT f.compliant AND (lc.dt IS NULL OR f.dt > lc.dt)
    GROUP BY f.account_id, f.region, c.resource_id
)
SELECT
    c.account_id,
    c.region,
    c.resource_type,
    c.resource_id,
    c.name,
    c.owner,
    s.since AS noncompliant_since,
    date_diff('day', CAST(s.since AS DATE), current_date) AS days_noncompliant,
    c.violations
FROM current_noncompliant AS c
JOIN streak AS s
    ON c.account_id = s.account_id AND c.region = s.region AND c.resource_id = s.resource_id
WHERE date_diff('day', CAST(s.since AS DATE), current_date) > ?
ORDER BY days_noncompliant DESC, c.owner, c.resource_id

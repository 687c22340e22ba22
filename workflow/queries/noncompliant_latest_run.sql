-- title: Noncompliant resources in the latest run
-- description: Every instance (and volume, snapshot, image, interface the policy covers) the most recent run found noncompliant (exempt ones count as compliant), with its owner, region and violations.
--
-- Tables: findings and runs of the Tagwarden Glue database (the named query sets the database;
-- DuckDB: create views with these names). The latest run is the one whose summary has the newest
-- evaluated_at; joining on the partition columns (dt, run) lets Athena read only that run's objects.
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
    coalesce(f.resource_type, 'instance') AS resource_type,
    coalesce(f.resource_id, f.instance_id) AS resource_id,
    f.instance_id,
    f.name,
    f.owner,
    f.instance_type,
    f.size_gib,
    f.attached_to,
    f.state,
    f.launch_time,
    f.violations,
    f.policy_name,
    f.run_id,
    f.evaluated_at
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
WHERE NOT f.compliant
ORDER BY f.owner, f.account_id, f.region, resource_type, resource_id

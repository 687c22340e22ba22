-- title: Noncompliant instances in the latest run
-- description: Every instance the most recent run found noncompliant (exempt instances count as compliant), with its owner, region and violations.
--
-- Tables: findings and runs of the Tagwarden Glue database (the named query sets the database;
-- DuckDB: create views with these names). The latest run is the one whose summary has the newest
-- evaluated_at; joining on the partition columns (dt, run) lets Athena read only that run's objects.
WITH latest AS (
    SELECT dt, run
    FROM runs
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
)
SELECT
    f.account_id,
    f.region,
    f.instance_id,
    f.name,
    f.owner,
    f.instance_type,
    f.state,
    f.launch_time,
    f.violations,
    f.policy_name,
    f.run_id,
    f.evaluated_at
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
WHERE NOT f.compliant
ORDER BY f.owner, f.account_id, f.region, f.instance_id

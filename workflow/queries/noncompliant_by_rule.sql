-- title: Violations by rule (latest run)
-- description: Per tag key and violation code in the most recent run: how many noncompliant resources (instances, and the other types the policy covers) break it.
--
-- One row per violation through CROSS JOIN UNNEST(f.violations) AS v, fields read as v.key and
-- v.code. Only this form works in both engines: Trino unnests an array of rows into one column per
-- row field (named after the fields, so a one-name alias list like t(v) is an error there), DuckDB
-- into one struct column named after the alias, whose fields v.key and v.code also resolve.
WITH latest AS (
    SELECT dt, run
    FROM runs
    WHERE coalesce(source, 'scheduled') = 'scheduled'
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
)
SELECT
    v.key AS tag_key,
    v.code AS violation,
    count(DISTINCT coalesce(f.resource_id, f.instance_id)) AS instances,
    count(*) AS violations
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
CROSS JOIN UNNEST(f.violations) AS v
WHERE NOT f.compliant
GROUP BY v.key, v.code
ORDER BY instances DESC, tag_key, violation

-- title: Violations by account and rule (latest run)
-- description: Per account, tag key and violation code in the most recent run: how many noncompliant resources (instances, and the other types the policy covers) break it, accounts in order.
--
-- The per-account variant of noncompliant_by_rule (which stays organisation-wide). Same
-- CROSS JOIN UNNEST(f.violations) AS v form, the one both engines read the same way (see there).
WITH latest AS (
    SELECT dt, run
    FROM runs
    WHERE coalesce(source, 'scheduled') = 'scheduled'
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
)
SELECT
    f.account_id,
    v.key AS tag_key,
    v.code AS violation,
    count(DISTINCT coalesce(f.resource_id, f.instance_id)) AS instances,
    count(*) AS violations
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
CROSS JOIN UNNEST(f.violations) AS v
WHERE NOT f.compliant
GROUP BY f.account_id, v.key, v.code
ORDER BY f.account_id, instances DESC, tag_key, violation

-- title: Compliance by resource type (latest run)
-- description: Per resource type in the most recent run (instance, volume, snapshot, image, network-interface): resources evaluated, noncompliant, compliance percentage, and the GiB of noncompliant EBS volumes and snapshots.
--
-- Runs written before resource types existed have no resource_type: their rows are instances.
WITH latest AS (
    SELECT dt, run
    FROM runs
    WHERE coalesce(source, 'scheduled') = 'scheduled'
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
)
SELECT
    coalesce(f.resource_type, 'instance') AS resource_type,
    count(*) AS resources,
    sum(CASE WHEN f.compliant THEN 0 ELSE 1 END) AS noncompliant,
    round(100 * CAST(sum(CASE WHEN f.compliant THEN 1 ELSE 0 END) AS DOUBLE) / count(*), 2) AS compliance_percentage,
    sum(CASE WHEN f.compliant THEN 0 ELSE coalesce(f.size_gib, 0) END) AS noncompliant_gib
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
GROUP BY coalesce(f.resource_type, 'instance')
ORDER BY noncompliant DESC, resource_type

-- title: Untagged EBS GiB by account and owner (latest run)
-- description: GiB of EBS volumes and snapshots the most recent run found noncompliant, per account, region and owner: spend the tags cannot allocate, largest first.
--
-- size_gib is the volume's size, or for a snapshot its volume's size (what the snapshot can grow
-- to, not its billed blocks). Owner is the policy's owner tag on the volume or snapshot itself.
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
    coalesce(f.owner, '(no owner)') AS owner,
    sum(CASE WHEN f.resource_type = 'volume' THEN f.size_gib ELSE 0 END) AS volume_gib,
    sum(CASE WHEN f.resource_type = 'snapshot' THEN f.size_gib ELSE 0 END) AS snapshot_gib,
    sum(f.size_gib) AS total_gib,
    count(*) AS resources
FROM findings AS f
JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
WHERE NOT f.compliant AND f.resource_type IN ('volume', 'snapshot')
GROUP BY f.account_id, f.region, coalesce(f.owner, '(no owner)')
ORDER BY total_gib DESC, f.account_id, f.region, owner

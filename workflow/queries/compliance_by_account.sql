-- title: Compliance by account (latest run)
-- description: Per account in the most recent run: regions scanned, resources (instances and any other types the policy covers), noncompliant ones, compliance percentage and the rule that breaks on the most instances there; most noncompliant first.
--
-- The account-level roll-up of noncompliant_by_region. worst_rule is 'tag key:violation code'
-- (as the run summary's by_rule keys), ties broken by name; NULL for an account with nothing to
-- fix. row_number() over a window and || on strings behave the same in Trino and DuckDB; the
-- violations are unnested as in noncompliant_by_rule.
WITH latest AS (
    SELECT dt, run
    FROM runs
    WHERE coalesce(source, 'scheduled') = 'scheduled'
    ORDER BY evaluated_at DESC, run DESC
    LIMIT 1
),
latest_findings AS (
    SELECT f.account_id, f.region, coalesce(f.resource_id, f.instance_id) AS resource_id, f.compliant, f.violations
    FROM findings AS f
    JOIN latest AS l ON f.dt = l.dt AND f.run = l.run
),
rule_counts AS (
    SELECT
        lf.account_id,
        v.key || ':' || v.code AS rule,
        count(DISTINCT lf.resource_id) AS instances
    FROM latest_findings AS lf
    CROSS JOIN UNNEST(lf.violations) AS v
    WHERE NOT lf.compliant
    GROUP BY lf.account_id, v.key, v.code
),
worst AS (
    SELECT
        account_id,
        rule,
        instances,
        row_number() OVER (PARTITION BY account_id ORDER BY instances DESC, rule) AS rule_rank
    FROM rule_counts
),
accounts AS (
    SELECT
        account_id,
        count(DISTINCT region) AS regions,
        count(*) AS instances,
        sum(CASE WHEN compliant THEN 0 ELSE 1 END) AS noncompliant,
        round(100 * CAST(sum(CASE WHEN compliant THEN 1 ELSE 0 END) AS DOUBLE) / count(*), 2) AS compliance_percentage
    FROM latest_findings
    GROUP BY account_id
)
SELECT
    a.account_id,
    a.regions,
    a.instances,
    a.noncompliant,
    a.compliance_percentage,
    w.rule AS worst_rule,
    w.instances AS worst_rule_instances
FROM accounts AS a
LEFT JOIN worst AS w ON w.account_id = a.account_id AND w.rule_rank = 1
ORDER BY a.noncompliant DESC, a.account_id

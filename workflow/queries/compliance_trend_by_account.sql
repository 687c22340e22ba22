-- title: Compliance trend per account per day
-- description: One row per day and account: the last run of the day that scanned the account, its evaluated and noncompliant instances there and its compliance percentage.
-- param: days (integer, default 90): how many days back the trend starts
--
-- The per-account companion of compliance_trend_daily. It reads findings, where the daily trend
-- reads only the small runs table: every instance of every run in the window (the dt filter
-- prunes older partitions), the price of counting exempt instances per account too. "The last run
-- that scanned the account" rather than the last run of the day: a run that could not reach an
-- account (a partial scan) has no findings for it and does not blank that account's day. Same
-- max_by and date_diff as compliance_trend_daily.
WITH per_run AS (
    SELECT
        f.dt,
        f.account_id,
        f.run_id,
        f.evaluated_at,
        count(*) AS evaluated,
        sum(CASE WHEN f.compliant THEN 0 ELSE 1 END) AS noncompliant,
        sum(CASE WHEN f.exempt THEN 1 ELSE 0 END) AS exempt,
        round(100 * CAST(sum(CASE WHEN f.compliant THEN 1 ELSE 0 END) AS DOUBLE) / count(*), 2) AS compliance_percentage
    FROM findings AS f
    WHERE date_diff('day', CAST(f.dt AS DATE), current_date) <= ?
        AND coalesce(f.source, 'scheduled') = 'scheduled'
    GROUP BY f.dt, f.account_id, f.run_id, f.evaluated_at
)
SELECT
    p.dt AS day,
    p.account_id,
    count(*) AS runs,
    max_by(p.run_id, p.evaluated_at) AS last_run_id,
    max_by(p.evaluated, p.evaluated_at) AS evaluated,
    max_by(p.noncompliant, p.evaluated_at) AS noncompliant,
    max_by(p.exempt, p.evaluated_at) AS exempt,
    max_by(p.compliance_percentage, p.evaluated_at) AS compliance_percentage
FROM per_run AS p
GROUP BY p.dt, p.account_id
ORDER BY day, p.account_id

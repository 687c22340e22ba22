-- title: Compliance trend per day
-- description: One row per day: the last run of the day, its evaluated and noncompliant instances and its compliance percentage.
-- param: days (integer, default 90): how many days back the trend starts
--
-- Reads only the small runs table (one summary per run). max_by(value, key) exists in Trino and
-- DuckDB alike; date_diff('day', start, end) counts whole days in both.
SELECT
    r.dt AS day,
    count(*) AS runs,
    max_by(r.run_id, r.evaluated_at) AS last_run_id,
    max_by(r.totals.total, r.evaluated_at) AS evaluated,
    max_by(r.totals.noncompliant, r.evaluated_at) AS noncompliant,
    max_by(r.totals.exempt, r.evaluated_at) AS exempt,
    max_by(r.totals.compliance_percentage, r.evaluated_at) AS compliance_percentage
FROM runs AS r
WHERE date_diff('day', CAST(r.dt AS DATE), current_date) <= ?
    AND coalesce(r.source, 'scheduled') = 'scheduled'
GROUP BY r.dt
ORDER BY day

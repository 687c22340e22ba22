-- title: Exemption history
-- description: Per run (scheduled and event, newest first) and exemption: the resources it exempted, and those it named after its last day (exemption_expired), with its expiry date. An exemption that named nothing in a run has no row for it.
--
-- The exemption column is the one the evaluator chose for the resource: the first in force, else
-- the first that had expired. Runs written before the column have none, so no rows.
SELECT
    r.evaluated_at,
    f.run AS run_id,
    coalesce(r.source, 'scheduled') AS source,
    f.exemption.id AS exemption,
    f.exemption.expires AS expires,
    sum(CASE WHEN f.exemption.expired THEN 0 ELSE 1 END) AS exempted,
    sum(CASE WHEN f.exemption.expired THEN 1 ELSE 0 END) AS expired
FROM findings AS f
JOIN runs AS r ON f.dt = r.dt AND f.run = r.run
WHERE f.exemption IS NOT NULL
GROUP BY r.evaluated_at, f.run, coalesce(r.source, 'scheduled'), f.exemption.id, f.exemption.expires
ORDER BY r.evaluated_at DESC, run_id, exemption

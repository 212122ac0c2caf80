-- The web console (issue 17).
--
-- daily_outcomes: how many of each webhook's deliveries finished on each UTC day (days since 1970-01-01), by how
-- they finished. The journal adds to it in the transaction of each batch (one multi-row upsert per batch), so the
-- 30-day history reads at most 30 rows a webhook instead of counting its deliveries. Filled here from the
-- finished deliveries that are kept (updated_at is when a delivery's last attempt was written).
CREATE TABLE daily_outcomes (
    webhook_id  TEXT NOT NULL,
    day         BIGINT NOT NULL,
    succeeded   BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    skipped     BIGINT NOT NULL DEFAULT 0,
    dropped     BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, day)
);

INSERT INTO daily_outcomes (webhook_id, day, succeeded, failed, skipped, dropped)
SELECT webhook_id, updated_at / 86400000,
       SUM(CASE WHEN status = 1 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 2 THEN 1 ELSE 0 END),
       SUM(CASE WHEN status = 3 THEN 1 ELSE 0 END), SUM(CASE WHEN status = 4 THEN 1 ELSE 0 END)
FROM deliveries WHERE status <> 0 GROUP BY webhook_id, updated_at / 86400000;

-- console_sessions: the console's signed-in browsers, shared by every kernel on the database (a session opened
-- through one kernel works through another behind a load balancer). Only hashes are kept: the SHA-256 of the
-- session id (the browser's cookie) and of the admin token it signed in with, which every request authenticates
-- again.
CREATE TABLE console_sessions (
    id_hash     TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);

-- Several kernels on one database (docs/cluster.md). Each kernel process registers a row with a fresh id at
-- start and heartbeats it on the database's clock (epoch milliseconds); it is dead once `heartbeat_at + lease_ms`
-- is in the past, or once it stopped cleanly (`stopped_at`). On SQLite there is one kernel, and the rows of
-- earlier runs are marked stopped at start.
CREATE TABLE kernels (
    id            TEXT PRIMARY KEY,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    lease_ms      BIGINT NOT NULL,
    stopped_at    BIGINT
);

-- Every pending delivery has one owner, the only kernel that sends it: the kernel that accepted its event (set by
-- the journal's insert), or the kernel that claimed it after its owner died or stopped. NULL: released by a
-- kernel that stopped cleanly (or written before this migration), for any live kernel to claim. Every outcome
-- write is fenced by the owner. next_attempt_at (epoch milliseconds) is when the next attempt is due, written
-- with the outcome of an attempt that will be retried, so that whoever sends it next honours the backoff.
ALTER TABLE deliveries ADD COLUMN owner TEXT;
ALTER TABLE deliveries ADD COLUMN next_attempt_at BIGINT;
CREATE INDEX deliveries_pending_by_owner ON deliveries (owner) WHERE status = 0;

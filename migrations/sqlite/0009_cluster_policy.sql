-- The PostgreSQL tables of policies shared by several kernels (migrations/postgres/0009). SQLite serves one kernel,
-- which paces its quotas and puts its hosts to sleep in memory; they are here so that both schemas keep the same
-- versions.
CREATE TABLE webhook_quota_slots (
    webhook_id    TEXT PRIMARY KEY,
    next_slot_at  BIGINT NOT NULL
);

CREATE TABLE host_sleeps (
    host          TEXT PRIMARY KEY,
    asleep_until  BIGINT NOT NULL,
    node_id       TEXT NOT NULL
);

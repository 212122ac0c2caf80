-- Policies shared by the kernels of one database (docs/cluster.md, "What is shared").
--
-- The rate quota (x-minIntervalMs) of each webhook that has one, cluster-wide: next_slot_at (epoch milliseconds,
-- on the database's clock) is when the next request of the webhook may start. A kernel reserves slots with one
-- atomic statement (next_slot_at = GREATEST(next_slot_at, now) + count * interval) before it sends; a slot
-- reserved by a kernel that dies is lost time, never a second request.
CREATE TABLE webhook_quota_slots (
    webhook_id    TEXT PRIMARY KEY,
    next_slot_at  BIGINT NOT NULL
);

-- Hosts put to sleep by a kernel (its circuit breaker): every kernel refuses to send to them until asleep_until
-- (epoch milliseconds, on the database's clock). Written once per decision and spread by NOTIFY; a kernel that
-- starts later reads the rows that have not passed. host is `scheme://host:port`.
CREATE TABLE host_sleeps (
    host          TEXT PRIMARY KEY,
    asleep_until  BIGINT NOT NULL,
    node_id       TEXT NOT NULL
);

-- hookwire core schema (SQLite). Portable types only, so that the same queries run on PostgreSQL:
-- text ids, BIGINT epoch milliseconds, integer flags and statuses, JSON as TEXT. Event data is stored as bytes:
-- it may hold NUL (Blynk's multi-value pins), which PostgreSQL's TEXT refuses.

CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE devices (
    id                TEXT PRIMARY KEY,
    group_id          TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    token_hash        TEXT NOT NULL UNIQUE,
    product_id        TEXT NOT NULL DEFAULT '',
    firmware_version  TEXT NOT NULL DEFAULT '',
    owner             TEXT NOT NULL DEFAULT '',
    created_at        BIGINT NOT NULL
);
CREATE INDEX devices_by_group ON devices (group_id, id);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    group_id    TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    definition  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX webhooks_by_group ON webhooks (group_id, id);

-- The devices a webhook is limited to (deviceID and x-devices), for listing by device and for deleting a
-- device's webhooks.
CREATE TABLE webhook_devices (
    webhook_id  TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    device_id   TEXT NOT NULL,
    PRIMARY KEY (webhook_id, device_id)
);
CREATE INDEX webhook_devices_by_device ON webhook_devices (device_id);

CREATE TABLE events (
    id            TEXT PRIMARY KEY,
    group_id      TEXT NOT NULL,
    device_id     TEXT,
    name          TEXT NOT NULL,
    data          BLOB NOT NULL,
    published_at  BIGINT NOT NULL,
    ttl           BIGINT NOT NULL
);

-- status: 0 pending, 1 succeeded, 2 failed, 3 skipped, 4 dropped.
CREATE TABLE deliveries (
    id            TEXT PRIMARY KEY,
    event_id      TEXT NOT NULL,
    webhook_id    TEXT NOT NULL,
    status        BIGINT NOT NULL,
    num_attempts  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX deliveries_pending ON deliveries (id) WHERE status = 0;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      TEXT NOT NULL,
    webhook_id       TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    attempt          BIGINT NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    request_method   TEXT NOT NULL,
    request_url      TEXT NOT NULL,
    response_status  BIGINT,
    error_class      TEXT,
    error_message    TEXT,
    delivery_status  BIGINT NOT NULL
);
CREATE INDEX attempts_by_webhook ON attempts (webhook_id, started_at);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id);

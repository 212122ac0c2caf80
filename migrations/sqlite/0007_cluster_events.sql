-- The PostgreSQL table of event batches sent to the other kernels (migrations/postgres/0008). SQLite serves one
-- kernel and never uses it; it is here so that both schemas keep the same versions.
CREATE TABLE cluster_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    node_id     TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

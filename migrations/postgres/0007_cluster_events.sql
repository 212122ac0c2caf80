-- Batches of events sent to the other kernels that are too large for a NOTIFY payload (docs/cluster.md, "Events
-- across kernels"): the NOTIFY carries the row's id. Rows are read within milliseconds and pruned after a minute;
-- UNLOGGED, since they are worthless after a crash.
CREATE UNLOGGED TABLE cluster_events (
    id          BIGSERIAL PRIMARY KEY,
    node_id     TEXT NOT NULL,
    payload     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX cluster_events_by_created_at ON cluster_events (created_at);

-- The load's own tables (schema pgchaos, created by the harness at start and
-- dropped at the end): ledger is local to the coordinator group, events is
-- hash-partitioned over the workers like the guide's tables, so losing a
-- worker is seen by the load.
CREATE SCHEMA IF NOT EXISTS pgchaos;
CREATE TABLE IF NOT EXISTS pgchaos.ledger (
    key bigint PRIMARY KEY,
    writer integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgchaos.events (
    id bigint NOT NULL,
    user_id bigint,
    kind text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY HASH (id);
CREATE FOREIGN TABLE IF NOT EXISTS pgchaos.events_w1 PARTITION OF pgchaos.events
    FOR VALUES WITH (MODULUS 2, REMAINDER 0) SERVER worker_1 OPTIONS (schema_name 'public', table_name 'pgchaos_events_shard');
CREATE FOREIGN TABLE IF NOT EXISTS pgchaos.events_w2 PARTITION OF pgchaos.events
    FOR VALUES WITH (MODULUS 2, REMAINDER 1) SERVER worker_2 OPTIONS (schema_name 'public', table_name 'pgchaos_events_shard');

-- The load's own tables on the Citus profile (schema pgchaos, created by the
-- harness at start, dropped at the end). Both are distributed, so every write
-- crosses the coordinator->worker path; ledger's shards sit in both groups.
CREATE SCHEMA IF NOT EXISTS pgchaos;
CREATE TABLE IF NOT EXISTS pgchaos.ledger (
    key bigint PRIMARY KEY,
    writer integer NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS pgchaos.events (
    id bigint PRIMARY KEY,
    user_id bigint,
    kind text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
SELECT create_distributed_table('pgchaos.ledger', 'key', shard_count => 8)
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'pgchaos.ledger'::regclass);
SELECT create_distributed_table('pgchaos.events', 'id', colocate_with => 'pgchaos.ledger')
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'pgchaos.events'::regclass);

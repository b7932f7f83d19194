-- The guide's tables on the Citus profile, distributed over the worker groups:
-- users and events co-located by user id, vectors (pgvector) for the DR
-- test's <=> search, and one reference table. Idempotent: the harness runs it
-- once the worker primaries are in pg_dist_node.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS users (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS events (
    id bigint NOT NULL,
    user_id bigint NOT NULL,
    kind text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);
CREATE TABLE IF NOT EXISTS vectors (
    id bigint PRIMARY KEY,
    label text,
    embedding vector(3) NOT NULL
);
CREATE TABLE IF NOT EXISTS event_kinds (
    kind text PRIMARY KEY,
    description text
);
SELECT create_distributed_table('users', 'id', shard_count => 8)
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'users'::regclass);
SELECT create_distributed_table('events', 'user_id', colocate_with => 'users')
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'events'::regclass);
SELECT create_distributed_table('vectors', 'id', shard_count => 8)
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'vectors'::regclass);
SELECT create_reference_table('event_kinds')
WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'event_kinds'::regclass);
INSERT INTO event_kinds VALUES ('seed', 'sample rows'), ('chaos', 'written under faults')
ON CONFLICT DO NOTHING;

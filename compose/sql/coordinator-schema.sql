-- The coordinator's schema: users, events and vectors are hash-partitioned
-- over the workers (one partition per worker, through postgres_fdw and
-- Toxiproxy's coordinator-worker links). The load's own tables live in the
-- schema pgchaos, which the harness creates (sql/pgchaos-load.sql).
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

CREATE SERVER worker_1 FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host 'toxiproxy', port '15101', dbname :'db', connect_timeout '2', extensions 'vector');
CREATE SERVER worker_2 FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host 'toxiproxy', port '15102', dbname :'db', connect_timeout '2', extensions 'vector');
CREATE USER MAPPING FOR PUBLIC SERVER worker_1 OPTIONS (user :'user', password :'password');
CREATE USER MAPPING FOR PUBLIC SERVER worker_2 OPTIONS (user :'user', password :'password');

CREATE TABLE users (
    id bigint NOT NULL,
    name text NOT NULL,
    email text,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY HASH (id);
CREATE TABLE events (
    id bigint NOT NULL,
    user_id bigint,
    kind text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY HASH (id);
CREATE TABLE vectors (
    id bigint NOT NULL,
    label text,
    embedding vector(3) NOT NULL
) PARTITION BY HASH (id);

CREATE FOREIGN TABLE users_w1 PARTITION OF users FOR VALUES WITH (MODULUS 2, REMAINDER 0)
    SERVER worker_1 OPTIONS (table_name 'users_shard');
CREATE FOREIGN TABLE users_w2 PARTITION OF users FOR VALUES WITH (MODULUS 2, REMAINDER 1)
    SERVER worker_2 OPTIONS (table_name 'users_shard');
CREATE FOREIGN TABLE events_w1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0)
    SERVER worker_1 OPTIONS (table_name 'events_shard');
CREATE FOREIGN TABLE events_w2 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1)
    SERVER worker_2 OPTIONS (table_name 'events_shard');
CREATE FOREIGN TABLE vectors_w1 PARTITION OF vectors FOR VALUES WITH (MODULUS 2, REMAINDER 0)
    SERVER worker_1 OPTIONS (table_name 'vectors_shard');
CREATE FOREIGN TABLE vectors_w2 PARTITION OF vectors FOR VALUES WITH (MODULUS 2, REMAINDER 1)
    SERVER worker_2 OPTIONS (table_name 'vectors_shard');

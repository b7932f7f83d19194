-- Runs once on each worker at initdb: the application role, database and the
-- shard tables that the coordinator reaches through postgres_fdw.
CREATE ROLE :"user" LOGIN SUPERUSER PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"user";
\connect :"db"
SET ROLE :"user";
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE users_shard (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    email text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE events_shard (
    id bigint PRIMARY KEY,
    user_id bigint,
    kind text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE vectors_shard (
    id bigint PRIMARY KEY,
    label text,
    embedding vector(3) NOT NULL
);
-- Shards of the load's pgchaos.events (the harness creates the coordinator side).
CREATE TABLE pgchaos_events_shard (
    id bigint PRIMARY KEY,
    user_id bigint,
    kind text NOT NULL,
    payload jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

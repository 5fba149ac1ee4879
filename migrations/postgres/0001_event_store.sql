-- The event log, its head, idempotency records and API keys.

CREATE TABLE events (
    position        bigint      PRIMARY KEY CHECK (position >= 1),
    event_id        uuid        NOT NULL UNIQUE,
    stream_id       text        NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 200),
    stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
    event_type      text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 200),
    schema_version  integer     NOT NULL CHECK (schema_version >= 1),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);

-- The single row every append locks (SELECT … FOR UPDATE): positions are assigned while it is
-- held, so commit order = position order and a tailing reader can never skip an event.
CREATE TABLE ledger_head (
    id        smallint PRIMARY KEY CHECK (id = 1),
    position  bigint   NOT NULL CHECK (position >= 0),
    hash      bytea    NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO ledger_head (id, position, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

-- Append-only, enforced by the database itself.
CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % refused', TG_OP USING ERRCODE = 'raise_exception';
END;
$$;
CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- The head only moves forward.
CREATE FUNCTION ledger_head_moves_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.position < OLD.position THEN
        RAISE EXCEPTION 'ledger head only moves forward' USING ERRCODE = 'raise_exception';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER ledger_head_forward BEFORE UPDATE OR DELETE ON ledger_head
    FOR EACH ROW EXECUTE FUNCTION ledger_head_moves_forward();
CREATE TRIGGER ledger_head_no_truncate BEFORE TRUNCATE ON ledger_head
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- Responses given under an Idempotency-Key; written in the same transaction as their events.
CREATE TABLE idempotency_keys (
    api_key_id   text        NOT NULL,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  text        NOT NULL,
    status       integer     NOT NULL CHECK (status BETWEEN 100 AND 599),
    body         text        NOT NULL,
    position     bigint      NOT NULL REFERENCES events (position),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api_key_id, key)
);

CREATE TABLE api_keys (
    id          text        PRIMARY KEY,
    prefix      text        NOT NULL,
    digest      bytea       NOT NULL UNIQUE CHECK (length(digest) = 32),
    scope       text        NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

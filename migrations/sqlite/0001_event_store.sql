-- The event log, its head, idempotency records and API keys (embedded store).
-- Same shape and rules as migrations/postgres; timestamps are RFC 3339 text in UTC with
-- microseconds, JSON is canonical text.

CREATE TABLE events (
    position        INTEGER PRIMARY KEY CHECK (position >= 1),
    event_id        BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),
    stream_id       TEXT    NOT NULL CHECK (length(stream_id) BETWEEN 1 AND 200),
    stream_version  INTEGER NOT NULL CHECK (stream_version >= 1),
    event_type      TEXT    NOT NULL CHECK (length(event_type) BETWEEN 1 AND 200),
    schema_version  INTEGER NOT NULL CHECK (schema_version >= 1),
    payload         TEXT    NOT NULL CHECK (json_valid(payload)),
    metadata        TEXT    NOT NULL CHECK (json_valid(metadata)),
    occurred_at     TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL,
    prev_hash       BLOB    NOT NULL CHECK (length(prev_hash) = 32),
    hash            BLOB    NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, stream_version)
);

CREATE TABLE ledger_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    position  INTEGER NOT NULL CHECK (position >= 0),
    hash      BLOB    NOT NULL CHECK (length(hash) = 32)
);
INSERT INTO ledger_head (id, position, hash) VALUES (1, 0, zeroblob(32));

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: UPDATE refused');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: DELETE refused');
END;
CREATE TRIGGER ledger_head_forward BEFORE UPDATE ON ledger_head
WHEN NEW.position < OLD.position
BEGIN
    SELECT RAISE(ABORT, 'ledger head only moves forward');
END;
CREATE TRIGGER ledger_head_no_delete BEFORE DELETE ON ledger_head
BEGIN
    SELECT RAISE(ABORT, 'ledger head only moves forward');
END;

CREATE TABLE idempotency_keys (
    api_key_id   TEXT    NOT NULL,
    key          TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint  TEXT    NOT NULL,
    status       INTEGER NOT NULL CHECK (status BETWEEN 100 AND 599),
    body         TEXT    NOT NULL,
    position     INTEGER NOT NULL REFERENCES events (position),
    created_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (api_key_id, key)
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    prefix      TEXT NOT NULL,
    digest      BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
    scope       TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Per-subject data keys for personal data (crypto-shredding); see the PostgreSQL migration.
CREATE TABLE data_keys (
    subject     TEXT PRIMARY KEY,
    wrapped     BLOB CHECK (wrapped IS NULL OR length(wrapped) = 60),
    created_at  TEXT NOT NULL,
    shredded_at TEXT,
    CHECK ((wrapped IS NULL) = (shredded_at IS NOT NULL))
) STRICT;

CREATE TRIGGER data_keys_no_unshred BEFORE UPDATE ON data_keys
    FOR EACH ROW WHEN OLD.wrapped IS NULL
BEGIN
    SELECT RAISE(ABORT, 'data key was shredded');
END;

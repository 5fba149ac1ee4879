-- Per-subject data keys for personal data (crypto-shredding).
--
-- Personal data inside events is encrypted with the subject's data key (AES-256-GCM); the key is
-- stored here wrapped by the master key from the environment. Erasing a subject sets `wrapped` to
-- NULL: the immutable log keeps its ciphertext and money facts, and nobody can read the person again.
CREATE TABLE data_keys (
    subject     text        PRIMARY KEY,
    wrapped     bytea       CHECK (wrapped IS NULL OR length(wrapped) = 60),
    created_at  timestamptz NOT NULL,
    shredded_at timestamptz,
    CHECK ((wrapped IS NULL) = (shredded_at IS NOT NULL))
);

-- A shredded key stays shredded: it can never be put back.
CREATE FUNCTION data_keys_no_unshred() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.wrapped IS NULL THEN
        RAISE EXCEPTION 'data key % was shredded', OLD.subject USING ERRCODE = 'P0001';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER data_keys_no_unshred BEFORE UPDATE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION data_keys_no_unshred();

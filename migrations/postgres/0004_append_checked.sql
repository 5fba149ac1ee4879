-- One round trip per append batch: the writer plans a batch on what it knows of the log after
-- its own last batch (the head, the versions of the streams it wrote) and sends the plan with
-- that knowledge. Under the head lock, the function checks the knowledge against the tables —
-- the head, the current version of every stream of the batch, that none of the batch's
-- idempotency keys is taken — and inserts only if all of it holds: the plan is then exactly the
-- one the transaction would have made after reading. Otherwise it changes nothing and answers
-- false, and the writer reads and plans again in a transaction of its own (another process
-- appended meanwhile). Called outside a transaction block, so the call is its own commit.
CREATE FUNCTION ledger_append_checked(
    p_head bigint, p_head_hash bytea,
    p_streams text[], p_versions bigint[],
    p_key_owners text[], p_keys text[],
    p_positions bigint[], p_event_ids uuid[], p_stream_ids text[], p_stream_versions bigint[],
    p_event_types text[], p_schema_versions int[], p_payloads text[], p_metadata text[],
    p_occurred_at timestamptz[], p_recorded_at timestamptz[], p_prev_hashes bytea[],
    p_hashes bytea[],
    p_new_head bigint, p_new_head_hash bytea,
    p_idem_owners text[], p_idem_keys text[], p_idem_fingerprints text[], p_idem_statuses int[],
    p_idem_bodies text[], p_idem_positions bigint[]
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    v_head bigint;
    v_head_hash bytea;
BEGIN
    -- The lock that orders every append of every process (as in the two-step path).
    SELECT h.position, h.hash INTO v_head, v_head_hash FROM ledger_head h WHERE h.id = 1 FOR UPDATE;
    IF NOT FOUND OR v_head IS DISTINCT FROM p_head OR v_head_hash IS DISTINCT FROM p_head_hash THEN
        RETURN false;
    END IF;
    -- One index probe per stream; 0 stands for a stream without events.
    IF EXISTS (
        SELECT 1 FROM UNNEST(p_streams, p_versions) AS s(id, v)
        WHERE COALESCE((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = s.id), 0)
              <> s.v
    ) THEN
        RETURN false;
    END IF;
    IF EXISTS (
        SELECT 1 FROM idempotency_keys i
        JOIN UNNEST(p_key_owners, p_keys) AS k(a, k) ON i.api_key_id = k.a AND i.key = k.k
    ) THEN
        RETURN false;
    END IF;
    INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version,
                        payload, metadata, occurred_at, recorded_at, prev_hash, hash)
    SELECT u.p, u.e, u.s, u.v, u.t, u.sv, u.pl::jsonb, u.md::jsonb, u.oa, u.ra, u.ph, u.h
    FROM UNNEST(p_positions, p_event_ids, p_stream_ids, p_stream_versions, p_event_types,
                p_schema_versions, p_payloads, p_metadata, p_occurred_at, p_recorded_at,
                p_prev_hashes, p_hashes) AS u(p, e, s, v, t, sv, pl, md, oa, ra, ph, h);
    UPDATE ledger_head SET position = p_new_head, hash = p_new_head_hash WHERE id = 1;
    INSERT INTO idempotency_keys (api_key_id, key, fingerprint, status, body, position)
    SELECT * FROM UNNEST(p_idem_owners, p_idem_keys, p_idem_fingerprints, p_idem_statuses,
                         p_idem_bodies, p_idem_positions);
    RETURN true;
END;
$$;

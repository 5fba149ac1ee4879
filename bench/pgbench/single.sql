-- One row per transaction (stream ids from gen_random_uuid: unique however long the run; md5(random())
-- once collided in a 3 × 40 s run and pgbench stopped on the duplicate key).
INSERT INTO pgbench_events (event_id, stream_id, stream_version, event_type, schema_version,
                            payload, metadata, occurred_at, recorded_at, prev_hash, hash)
SELECT gen_random_uuid(), 'bench-ch_' || replace(gen_random_uuid()::text, '-', ''), 1, 'BenchEventAppended', 1,
       jsonb_build_object('charge_id', 'ch_' || md5(random()::text),
                          'customer_id', 'cus_' || md5(random()::text),
                          'amount', 1000, 'currency', 'usd', 'payment_method', 'tok_visa',
                          'gateway', 'sandbox', 'gateway_key', 'charge-ch_' || md5(random()::text),
                          'description', 'synthetic append benchmark event, about three hundred bytes'),
       '{"actor":"bench"}'::jsonb, now(), now(), sha256(''::bytea), sha256(i::text::bytea)
FROM generate_series(1, 1) AS i;

//! Conformance suite of the event store: every test runs against PostgreSQL and SQLite.
//!
//! PostgreSQL is found through `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! a superuser); each test creates its own database and drops it afterwards. SQLite tests use a
//! fresh file in a temporary directory.

#[path = "conformance/suite.rs"]
mod suite;
#[path = "conformance/support.rs"]
mod support;

/// Generates one `#[tokio::test]` per backend for each test function of [`suite`].
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::suite::$name(crate::support::Kind::Postgres).await;
                }
            )*
        }

        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::suite::$name(crate::support::Kind::Sqlite).await;
                }
            )*
        }
    };
}

on_both_backends!(
    exact_version_has_one_winner,
    tailing_reader_sees_every_position_once_in_order,
    reading_categories_skips_the_rest_and_misses_nothing,
    the_tail_holds_what_the_log_holds,
    update_delete_truncate_refused_by_database,
    changed_byte_is_found_at_its_position,
    removed_events_are_found_where_they_are_missing,
    idempotency_record_and_events_commit_together,
    reading_100k_events_keeps_memory_flat,
    upcasters_apply_on_read_but_the_chain_checks_stored_bytes,
    one_request_refused_does_not_fail_its_batch,
    stale_knowledge_of_another_writer_never_decides,
    atomic_appends_record_all_or_nothing,
    group_commit_batches_concurrent_appends,
    streams_and_events_read_back_exactly,
    api_keys_are_found_listed_and_revoked,
    shredded_data_keys_stay_shredded,
);

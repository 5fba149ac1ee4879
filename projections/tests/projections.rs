//! The projections crate's one integration-test binary: real PostgreSQL (`DATABASE_URL`, a fresh
//! database per test), real SQLite files and a real NATS JetStream server (`NATS_URL`).

mod projections {
    pub mod nats_worker;
    pub mod relay;
    pub mod replay_props;
    pub mod support;
    pub mod worker;
}

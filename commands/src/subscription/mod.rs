//! Subscriptions (pure aggregate). Being written.

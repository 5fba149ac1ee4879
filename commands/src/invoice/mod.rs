//! Invoices (pure aggregate). Being written.

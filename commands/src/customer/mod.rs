//! Customers. Being written.

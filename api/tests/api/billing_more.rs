//! More billing scenarios (being written).

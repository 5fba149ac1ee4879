//! Webhooks from gateways: signature checks and the envelope fields the inbox records. Pure: no
//! I/O, no clock (the caller passes the time).

pub mod stripe;

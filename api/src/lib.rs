//! The outside of Kanizsa Billing: the HTTP server (command API, operations endpoints) and the
//! `billing` command line. Handlers parse, call a command service, and map the result; there is
//! no SQL here. Errors become HTTP in one place, [`http::error`].

pub mod cli;
pub mod config;
pub mod http;
pub mod state;

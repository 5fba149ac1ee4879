//! The gateways' clients against local stand-ins of their APIs (one test binary).

mod gateways {
    pub mod paypal;
    pub mod stripe;
}

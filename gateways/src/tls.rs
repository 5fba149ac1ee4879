//! TLS for outbound HTTP: rustls with the ring provider (the one async-stripe's hyper-rustls
//! uses), so no second crypto library is built. reqwest (PayPal) finds the provider
//! process-wide: [`install_crypto_provider`] puts it there, once; every later call is a no-op.

/// Installs ring as the process's rustls crypto provider unless one is installed already.
/// Call it before building a reqwest client (the PayPal client does).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race: its provider is ring too, and ours is dropped.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

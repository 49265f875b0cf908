//! The TLS crypto provider: rustls on `ring`, installed process-wide before any HTTPS
//! client is built (reqwest is built without a provider of its own; see Cargo.toml).

/// Installs `ring` as the process's rustls provider; later calls do nothing.
pub fn install_crypto_provider() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Err means a provider is already installed (an embedding program's): keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

//! The TCP listener's TLS: lbd's certificate and key, and a client verifier that requires a
//! certificate chaining to `[node.api.tls] client_ca_pem` (mutual TLS: no certificate, or one
//! from another CA, fails the handshake before a request is read).

use crate::config::ApiTls;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::sync::Arc;

/// The server config for `tls`. The config check has parsed every PEM section already; what
/// can fail here is what needs the crypto provider: a key that is not the certificate's, a
/// key type rustls cannot sign with.
pub fn server_config(tls: &ApiTls) -> Result<Arc<ServerConfig>, String> {
    use crate::config::pem;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = pem::certificate_chain("cert_pem", &tls.cert_pem)?;
    let key = pem::private_key("key_pem", tls.key_pem.expose())?;
    let mut roots = RootCertStore::empty();
    for ca in pem::ca_certificates_of("client_ca_pem", &tls.client_ca_pem)? {
        roots
            .add(ca)
            .map_err(|e| format!("client_ca_pem: a certificate rustls refuses: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("client_ca_pem: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "key_pem is not the private key of cert_pem's certificate".to_string()
            }
            e => format!("cert_pem and key_pem: {e}"),
        })?;
    Ok(Arc::new(config))
}

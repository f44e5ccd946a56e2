//! TLS for the HTTPS check (rustls with the ring provider). Certificates are verified only when
//! the check says so: against the check's own CAs (`ca_pem`, for reals signed by a private
//! CA), or with `tls_verify = true` alone against the Mozilla roots compiled in (the appliance
//! has no CA store on disk). Otherwise any certificate is accepted (keepalived's SSL_GET and
//! ldirectord do not verify either), while the handshake signatures are still checked.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Where and how to make the TLS connection.
#[derive(Clone, Debug)]
pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    /// SNI name (a DNS name), or an IP address (no SNI is sent then).
    pub name: ServerName<'static>,
}

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
pub enum Verify {
    /// Not at all (the handshake signatures still are).
    No,
    /// Against the public roots compiled in.
    PublicRoots,
    /// Against these CAs only (`ca_pem`).
    Roots(Arc<rustls::RootCertStore>),
}

impl Verify {
    /// How an HTTPS check verifies (`No` for other checks). Errors: a `ca_pem` that rustls
    /// refuses though the config check accepted it.
    pub fn of(check: &crate::config::Check) -> Result<Verify, String> {
        Ok(match &check.kind {
            crate::config::CheckKind::Https(h) => match &h.ca_pem {
                Some(pem) => Verify::Roots(ca_roots(pem)?),
                None if h.tls_verify => Verify::PublicRoots,
                None => Verify::No,
            },
            _ => Verify::No,
        })
    }
}

impl TlsTarget {
    /// `None` when `name` is neither a DNS name nor an IP address.
    pub fn new(name: &str, verify: Verify) -> Option<TlsTarget> {
        let name = ServerName::try_from(name.to_string()).ok()?;
        let config = match verify {
            Verify::No => config(false),
            Verify::PublicRoots => config(true),
            Verify::Roots(roots) => config_with_roots(roots),
        };
        Some(TlsTarget { config, name })
    }
}

/// The trust store of a check's `ca_pem` (validated with the config, so an error here means a
/// certificate the config check accepted and rustls did not).
pub fn ca_roots(pem: &str) -> Result<Arc<rustls::RootCertStore>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::config::pem::ca_certificates(pem)? {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(roots))
}

/// One client config per distinct CA set: the reals of a service share their check, and ten
/// thousand copies of a TLS config would be ten thousand root stores.
fn config_with_roots(roots: Arc<rustls::RootCertStore>) -> Arc<ClientConfig> {
    /// The anchors' subjects and keys, and the config built for them.
    type Cached = (Vec<Vec<u8>>, Weak<ClientConfig>);
    static BY_ROOTS: Mutex<Vec<Cached>> = Mutex::new(Vec::new());
    let key: Vec<Vec<u8>> = roots
        .roots
        .iter()
        .map(|a| [a.subject.as_ref(), a.subject_public_key_info.as_ref()].concat())
        .collect();
    let mut cache = BY_ROOTS.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|(_, c)| c.strong_count() > 0);
    if let Some(c) = cache
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, c)| c.upgrade())
    {
        return c;
    }
    let config = Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    cache.push((key, Arc::downgrade(&config)));
    config
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The shared client configs: one verifying, one not.
fn config(verify: bool) -> Arc<ClientConfig> {
    static VERIFYING: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    static ACCEPTING: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    let build = |verify: bool| {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions");
        let config = if verify {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
                .with_no_client_auth()
        };
        Arc::new(config)
    };
    if verify {
        VERIFYING.get_or_init(|| build(true)).clone()
    } else {
        ACCEPTING.get_or_init(|| build(false)).clone()
    }
}

/// Accepts any server certificate; still verifies the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

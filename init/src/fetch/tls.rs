//! HTTPS for the config fetch, trusting a pinned server key rather than a CA chain.
//!
//! A box that boots from the network has no trustworthy clock (an RTC reset to 1970, a box
//! that sat in a drawer), and a CA chain's validity cannot be checked without one. A pinned
//! key can: the server must prove it holds the private key of one of the pinned public keys
//! (the TLS handshake's signature), and that is all that is trusted. Names and dates in the
//! certificate are not looked at. Pins are written as curl's `--pinnedpubkey`:
//! `sha256//` and the base64 of the SHA-256 of the certificate's SubjectPublicKeyInfo, which
//! `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256
//! -binary | base64` prints.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// A pinned server key: the SHA-256 of its SubjectPublicKeyInfo.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin(pub [u8; 32]);

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sha256//{}",
            base64::engine::general_purpose::STANDARD.encode(self.0)
        )
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Pin {
    type Err = String;

    /// `sha256//BASE64` (curl's form).
    fn from_str(text: &str) -> Result<Pin, String> {
        let b64 = text.trim().strip_prefix("sha256//").ok_or_else(|| {
            format!("{text:?} is not a key pin: write sha256// and the base64 SHA-256 of the server's public key")
        })?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("{text:?}: not base64: {e}"))?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| format!("{text:?}: a SHA-256 is 32 bytes"))?;
        Ok(Pin(raw))
    }
}

/// The pin of a certificate's public key.
pub fn pin_of(cert: &[u8]) -> Result<Pin, String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("the server's certificate does not parse: {e}"))?;
    Ok(Pin(
        Sha256::digest(parsed.tbs_certificate.subject_pki.raw).into()
    ))
}

/// A rustls client config that accepts exactly the servers holding a pinned key.
pub fn client_config(pins: Vec<Pin>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedKey {
        pins,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Arc::new(config)
}

#[derive(Debug)]
struct PinnedKey {
    pins: Vec<Pin>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedKey {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pin = pin_of(end_entity).map_err(rustls::Error::General)?;
        if self.pins.contains(&pin) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's key is {pin}, not a pinned one ({})",
                self.pins
                    .iter()
                    .map(Pin::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_written_as_curl_writes_them() {
        let pin: Pin = "sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
            .parse()
            .unwrap();
        assert_eq!(pin.0[31], 31);
        assert_eq!(
            pin.to_string(),
            "sha256//AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
        );
        assert!("AAECAwQF".parse::<Pin>().unwrap_err().contains("sha256//"));
        assert!("sha256//AAEC"
            .parse::<Pin>()
            .unwrap_err()
            .contains("32 bytes"));
        assert!("sha256//!!".parse::<Pin>().unwrap_err().contains("base64"));
    }
}

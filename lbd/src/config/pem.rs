//! Certificates and keys written inline as PEM text (`ca_pem` of an HTTPS check, the control
//! API's `[node.api.tls]`: the appliance has no files of its own, the config is fetched).
//! Pure. Each certificate is parsed here the way the TLS stack will use it (a trust anchor, or
//! an end-entity certificate), so a bad one is a config error that points at the key instead
//! of a check that can never pass or a listener that never starts.

use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of `text`, in order: at least one, each a usable trust anchor. The error
/// says what is wrong and is shown with the key's line and column.
pub fn ca_certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    ca_certificates_of("ca_pem", text)
}

/// [`ca_certificates`] for the config key `key` (named in the errors).
pub fn ca_certificates_of(key: &str, text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
        let (kind, der) = section.map_err(|e| describe(&e))?;
        match kind {
            SectionKind::Certificate => {
                let cert = CertificateDer::from(der);
                webpki::anchor_from_trusted_cert(&cert).map_err(|e| {
                    format!(
                        "certificate {} is not a valid X.509 certificate ({e:?})",
                        certs.len() + 1
                    )
                })?;
                certs.push(cert);
            }
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(format!("{key} holds a private key: it takes the CA's certificate only (remove the key, and keep it off the config server)"));
            }
            other => {
                return Err(format!(
                    "{key} holds a {} section: it takes CERTIFICATE sections only",
                    name(other)
                ))
            }
        }
    }
    if certs.is_empty() {
        return Err(
            "no certificate: expected PEM text with -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----"
                .into(),
        );
    }
    Ok(certs)
}

/// A certificate chain (`cert_pem`): at least one certificate, the first one a usable
/// end-entity (server) certificate; no keys.
pub fn certificate_chain(key: &str, text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
        let (kind, der) = section.map_err(|e| describe(&e))?;
        match kind {
            SectionKind::Certificate => {
                let cert = CertificateDer::from(der);
                if certs.is_empty() {
                    webpki::EndEntityCert::try_from(&cert).map_err(|e| {
                        format!("the first certificate is not a valid X.509 certificate ({e:?})")
                    })?;
                } else {
                    webpki::anchor_from_trusted_cert(&cert).map_err(|e| {
                        format!(
                            "certificate {} is not a valid X.509 certificate ({e:?})",
                            certs.len() + 1
                        )
                    })?;
                }
                certs.push(cert);
            }
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(format!(
                    "{key} holds a private key: the key goes in key_pem, the certificates here"
                ));
            }
            other => {
                return Err(format!(
                    "{key} holds a {} section: it takes CERTIFICATE sections only",
                    name(other)
                ))
            }
        }
    }
    if certs.is_empty() {
        return Err(
            "no certificate: expected PEM text with -----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----"
                .into(),
        );
    }
    Ok(certs)
}

/// The one private key of `text` (`key_pem`): PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE
/// KEY`) or SEC1 (`EC PRIVATE KEY`), and nothing else.
pub fn private_key(key: &str, text: &str) -> Result<PrivateKeyDer<'static>, String> {
    let mut found: Option<PrivateKeyDer<'static>> = None;
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes()) {
        let (kind, der) = section.map_err(|e| describe(&e))?;
        let k = match kind {
            SectionKind::PrivateKey => PrivateKeyDer::Pkcs8(der.into()),
            SectionKind::RsaPrivateKey => PrivateKeyDer::Pkcs1(der.into()),
            SectionKind::EcPrivateKey => PrivateKeyDer::Sec1(der.into()),
            SectionKind::Certificate => {
                return Err(format!(
                    "{key} holds a certificate: it takes the private key only (the certificate goes in cert_pem)"
                ))
            }
            other => {
                return Err(format!(
                    "{key} holds a {} section: it takes one PRIVATE KEY section",
                    name(other)
                ))
            }
        };
        if found.is_some() {
            return Err(format!(
                "{key} holds two private keys: keep the one of cert_pem's certificate"
            ));
        }
        found = Some(k);
    }
    found.ok_or_else(|| {
        "no private key: expected PEM text with -----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----"
            .into()
    })
}

fn describe(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "PEM section without its end line {:?}",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("bad PEM begin line {:?}", String::from_utf8_lossy(line))
        }
        pem::Error::Base64Decode(_) => "bad base64 inside a PEM section".into(),
        other => format!("bad PEM: {other}"),
    }
}

fn name(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::PublicKey => "PUBLIC KEY",
        SectionKind::Crl => "X509 CRL",
        SectionKind::Csr => "CERTIFICATE REQUEST",
        SectionKind::EchConfigList => "ECHCONFIG",
        _ => "non-certificate",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 CA certificate made with `openssl req -x509` for these tests.
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBgjCCASmgAwIBAgIUHRLTgnGLajyXNWfSSmGKIjjct88wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLbGJkIHRlc3QgQ0EwIBcNMjYxMTIzMTQwNjQwWhgPMjEyNjEw
MzAxNDA2NDBaMBYxFDASBgNVBAMMC2xiZCB0ZXN0IENBMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEtJNsscW1xB730dvycuP74dPJVDCR7BOU8+gtTMJW0LJdCvnp
LeKyFv8OFvDN2Xag9PnvIqFkoXKGBv/1sIKGUKNTMFEwHQYDVR0OBBYEFCru0joX
jsdUrwCHd3FSf41IsuYLMB8GA1UdIwQYMBaAFCru0joXjsdUrwCHd3FSf41IsuYL
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgDj3av7HmKEthBuIe
vptDrH6eEgbX+U+sEOG7VPKLxLUCIE61CR/GadHQD6yH7nfkJxDuEa8gOZSZHjd7
XnhoLrxm
-----END CERTIFICATE-----
";

    #[test]
    fn one_or_more_certificates() {
        let certs = ca_certificates(CA).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].as_ref()[0], 0x30, "DER: a SEQUENCE");
        // Text around the sections (as `openssl x509 -text` prints) is allowed.
        let two = format!("Certificate:\n    Subject: CN = lbd test CA\n{CA}\n{CA}");
        assert_eq!(ca_certificates(&two).unwrap().len(), 2);
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        let e = |t: &str| ca_certificates(t).unwrap_err();
        assert!(e("").starts_with("no certificate"), "{}", e(""));
        assert!(e("/etc/ssl/ca.pem").starts_with("no certificate"));
        let no_end = CA.replace("-----END CERTIFICATE-----", "");
        assert!(
            e(&no_end).contains("without its end line"),
            "{}",
            e(&no_end)
        );
        let bad_base64 = CA.replacen("MIIB", "MI!B", 1);
        assert_eq!(e(&bad_base64), "bad base64 inside a PEM section");
        // Valid base64, but not a certificate.
        let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
        assert!(
            e(not_der).starts_with("certificate 1 is not a valid X.509"),
            "{}",
            e(not_der)
        );
        let key = "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n";
        assert!(e(&format!("{CA}{key}")).contains("private key"));
        let csr =
            "-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8=\n-----END CERTIFICATE REQUEST-----\n";
        assert!(e(csr).contains("CERTIFICATE REQUEST section"));
    }
}

//! Test certificates for the control API's mutual TLS, made with rcgen when a test (or the
//! demo) starts: a CA, lbd's server certificate and key, client certificates with the names
//! that give them roles. Nothing is committed, nothing outlives the run. Never use these for
//! a real balancer: the keys are in the test's files and logs.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A certificate and its private key, as PEM text.
#[derive(Clone, Debug)]
pub struct CertKey {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key (PKCS#8), PEM.
    pub key_pem: String,
}

/// The files a client needs: its certificate and key, and the CA that signed lbd's.
#[derive(Clone, Debug)]
pub struct ClientFiles {
    /// `--cert`
    pub cert: PathBuf,
    /// `--key`
    pub key: PathBuf,
    /// `--ca`
    pub ca: PathBuf,
}

impl ClientFiles {
    /// `--cert FILE --key FILE --ca FILE`, for lbctl's command line.
    pub fn lbctl_args(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            self.cert.display().to_string(),
            "--key".into(),
            self.key.display().to_string(),
            "--ca".into(),
            self.ca.display().to_string(),
        ]
    }

    /// `--cert FILE --key FILE --cacert FILE`, for curl's.
    pub fn curl_args(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            self.cert.display().to_string(),
            "--key".into(),
            self.key.display().to_string(),
            "--cacert".into(),
            self.ca.display().to_string(),
        ]
    }
}

/// A certificate authority for one test: it signs lbd's certificate and the clients'.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
    /// The CA's certificate, PEM (lbd's `client_ca_pem`, the clients' `--ca`).
    pub cert_pem: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA whose subject CN is `name`.
    pub fn new(name: &str) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("a P-256 key");
        let issuer = rcgen::CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        let cert_pem = issuer.pem();
        TestCa { issuer, cert_pem }
    }

    fn sign(&self, cn: &str, names: &[String], usage: rcgen::ExtendedKeyUsagePurpose) -> CertKey {
        let mut params = rcgen::CertificateParams::new(names.to_vec())
            .unwrap_or_else(|e| panic!("names {names:?}: {e}"));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "lb tests");
        params.extended_key_usages = vec![usage];
        let key = rcgen::KeyPair::generate().expect("a P-256 key");
        let cert = params.signed_by(&key, &self.issuer).expect("a certificate");
        CertKey {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// lbd's certificate for these addresses (IP subject alternative names: clients check the
    /// URL's host against them).
    pub fn server(&self, addrs: &[IpAddr]) -> CertKey {
        let names: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        self.sign("lbd", &names, rcgen::ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with subject CN `cn` (the name `[node.api.tls.clients]` maps).
    pub fn client(&self, cn: &str) -> CertKey {
        self.sign(cn, &[], rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// `[node.api.tls]` for a config: lbd's certificate and key, this CA as the clients' CA,
    /// and `clients` (certificate name → role).
    pub fn api_tls_toml(&self, server: &CertKey, clients: &[(&str, &str)]) -> String {
        let mut t = format!(
            "\n[node.api.tls]\ncert_pem = \"\"\"\n{}\"\"\"\nkey_pem = \"\"\"\n{}\"\"\"\nclient_ca_pem = \"\"\"\n{}\"\"\"\n",
            server.cert_pem, server.key_pem, self.cert_pem
        );
        if !clients.is_empty() {
            t.push_str("\n[node.api.tls.clients]\n");
            for (name, role) in clients {
                t.push_str(&format!("{name:?} = {role:?}\n"));
            }
        }
        t
    }

    /// Writes `client`'s certificate and key and this CA's certificate into `dir` as
    /// `NAME.crt`, `NAME.key` and `ca.crt` (world-readable, so a client run as another user
    /// reads them too).
    pub fn write_client(
        &self,
        dir: &Path,
        name: &str,
        client: &CertKey,
    ) -> io::Result<ClientFiles> {
        use std::os::unix::fs::PermissionsExt;
        let files = ClientFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
            ca: dir.join("ca.crt"),
        };
        for (path, text) in [
            (&files.cert, &client.cert_pem),
            (&files.key, &client.key_pem),
            (&files.ca, &self.cert_pem),
        ] {
            std::fs::write(path, text)?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
        }
        Ok(files)
    }
}

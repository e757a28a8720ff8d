//! HTTPS servers for tests: a certificate authority made for one test, a
//! server certificate it issues for 127.0.0.1 and localhost, and an axum
//! router served with it on the services' own TLS listener.

use std::path::PathBuf;

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::edge::tls::{TlsFiles, TlsListener};

/// A test's certificate authority and the server certificate it issued, as
/// PEM files in a directory of their own.
pub struct TestCa {
    pub dir: PathBuf,
    /// The CA's certificate: what a client must trust (`TLS_CA_FILE`).
    pub ca_file: PathBuf,
    /// The server's certificate and key, for 127.0.0.1 and localhost.
    pub server: TlsFiles,
}

impl TestCa {
    /// A new CA and a server certificate issued by it.
    pub fn new() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("omnisaga-test-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "omnisaga test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate()?;
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
            .signed_by(&server_key, &issuer)?;
        let files = TlsFiles {
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        };
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem())?;
        std::fs::write(&files.cert, server.pem())?;
        std::fs::write(&files.key, server_key.serialize_pem())?;
        Ok(Self {
            dir,
            ca_file,
            server: files,
        })
    }

    /// Serves `router` over HTTPS only on a free port of 127.0.0.1 until the
    /// test ends; its base URL (`https://127.0.0.1:<port>`).
    pub async fn serve(&self, router: axum::Router) -> Result<String> {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", tcp.local_addr()?);
        let listener = TlsListener::new(tcp, self.server.acceptor().context("the test's certificate")?)?;
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(url)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Shared by the test files: certificates (rcgen, ring) and configs, pairs
//! of TLS streams over memory, lockstep and TCP transports, and the
//! "tool absent" rule for tests that need python3 or curl.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use trio::socket::SocketStream;
use trio::stream::BoxStream;
use trio::stream::Stream;
use trio::testing::{lockstep_stream_pair, memory_stream_pair};
use trio_tls::TlsStream;
use trio_tls::rustls::{self, ProtocolVersion, pki_types};

/// A CA, and a leaf for "localhost" and 127.0.0.1 signed by it.
pub struct Certs {
    pub ca_der: pki_types::CertificateDer<'static>,
    pub ca_pem: String,
    pub leaf_der: pki_types::CertificateDer<'static>,
    pub leaf_pem: String,
    pub key_der: Vec<u8>,
    pub key_pem: String,
}

pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "trio-tls test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        Certs {
            ca_der: ca_cert.der().clone(),
            ca_pem: ca_cert.pem(),
            leaf_der: leaf_cert.der().clone(),
            leaf_pem: leaf_cert.pem(),
            key_der: leaf_key.serialize_der(),
            key_pem: leaf_key.serialize_pem(),
        }
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(v: Option<ProtocolVersion>) -> Vec<&'static rustls::SupportedProtocolVersion> {
    match v {
        Some(ProtocolVersion::TLSv1_2) => vec![&rustls::version::TLS12],
        Some(ProtocolVersion::TLSv1_3) => vec![&rustls::version::TLS13],
        _ => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    }
}

/// A client config trusting the test CA; `version`: only that one.
pub fn client_config_with(
    version: Option<ProtocolVersion>,
    alpn: &[&[u8]],
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs().ca_der.clone()).unwrap();
    let mut c = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(version))
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(c)
}

pub fn client_config(version: Option<ProtocolVersion>) -> Arc<rustls::ClientConfig> {
    client_config_with(version, &[])
}

/// A server config with the test leaf; `version`: only that one.
pub fn server_config_with(
    version: Option<ProtocolVersion>,
    alpn: &[&[u8]],
) -> Arc<rustls::ServerConfig> {
    let c = certs();
    let key = pki_types::PrivateKeyDer::Pkcs8(c.key_der.clone().into());
    let mut s = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&versions(version))
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![c.leaf_der.clone(), c.ca_der.clone()], key)
        .unwrap();
    s.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(s)
}

pub fn server_config(version: Option<ProtocolVersion>) -> Arc<rustls::ServerConfig> {
    server_config_with(version, &[])
}

pub fn localhost() -> pki_types::ServerName<'static> {
    pki_types::ServerName::try_from("localhost").unwrap()
}

/// Client and server over any pair of transports.
pub fn tls_pair<S: Stream>(
    a: S,
    b: S,
    version: Option<ProtocolVersion>,
) -> (TlsStream<S>, TlsStream<S>) {
    let client = TlsStream::client(a, client_config(version), localhost()).unwrap();
    let server = TlsStream::server(b, server_config(version)).unwrap();
    (client, server)
}

pub fn memory_tls_pair(
    version: Option<ProtocolVersion>,
) -> (TlsStream<BoxStream>, TlsStream<BoxStream>) {
    let (a, b) = memory_stream_pair();
    tls_pair(Box::new(a) as BoxStream, Box::new(b) as BoxStream, version)
}

/// Over lockstep transports (a send blocks until the peer receives): the
/// clogged maker of the checks. Boxed, to match [`memory_tls_pair`].
pub fn lockstep_tls_pair(
    version: Option<ProtocolVersion>,
) -> (TlsStream<BoxStream>, TlsStream<BoxStream>) {
    let (a, b) = lockstep_stream_pair();
    tls_pair(Box::new(a) as BoxStream, Box::new(b) as BoxStream, version)
}

/// A connected TCP pair on loopback (the kernel completes the connection
/// from its backlog, so connect-then-accept needs no concurrency).
pub async fn tcp_pair() -> trio::Result<(SocketStream, SocketStream)> {
    use trio::stream::{AsyncResource, Listener};
    let listeners = trio::open_tcp_listeners(0, Some("127.0.0.1")).await?;
    let addr = listeners[0].local_addr()?.as_socket().unwrap();
    let a = SocketStream::connect_tcp(addr).await?;
    let b = listeners[0].accept().await?;
    listeners[0].aclose().await?;
    Ok((a, b))
}

/// Whether `tool` is on PATH. Absent: a test prints a note and skips,
/// unless `TRIO_REQUIRE_TOOLS=1` (CI), where absence fails the test.
pub fn have_tool(tool: &str) -> bool {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("TRIO_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{tool} is required (TRIO_REQUIRE_TOOLS=1) but is not installed");
        }
        eprintln!("note: {tool} is not installed: skipping this test");
    }
    found
}

/// The test certificates as PEM files in a fresh directory, removed when
/// this is dropped (also when the test fails).
pub struct PemFiles {
    dir: PathBuf,
    pub ca: PathBuf,
    pub chain: PathBuf,
    pub key: PathBuf,
}

impl Drop for PemFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes the test CA, the leaf's chain and its key as PEM files.
pub fn pem_files(tag: &str) -> PemFiles {
    let dir = std::env::temp_dir().join(format!("trio-tls-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = certs();
    let files = PemFiles {
        ca: dir.join("ca.pem"),
        chain: dir.join("chain.pem"),
        key: dir.join("key.pem"),
        dir,
    };
    std::fs::write(&files.ca, &c.ca_pem).unwrap();
    std::fs::write(&files.chain, format!("{}{}", c.leaf_pem, c.ca_pem)).unwrap();
    std::fs::write(&files.key, &c.key_pem).unwrap();
    files
}

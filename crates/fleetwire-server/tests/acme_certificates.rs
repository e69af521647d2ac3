//! Automatic certificates against a real ACME server (Debian's `pebble`, with
//! `pebble-challtestsrv` as its DNS so `fleet.example.test` resolves to loopback): the server
//! answers pebble's http-01 challenge on its plain-HTTP listener, serves the certificate it gets
//! to handshakes that name the domain (valid under pebble's root), keeps serving the pinned
//! device certificate to every other handshake, renews it (a tiny `renew_after_fraction`) and
//! swaps it for new handshakes while an open connection made with the old one keeps working.
//! The account and the certificate's key are written 0600.
#![allow(clippy::disallowed_methods, clippy::too_many_lines)] // a real clock; one story

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetwire_tokio::tls;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

mod common;
use common::api::Served;

const DOMAIN: &str = "fleet.example.test";

/// Kills the child processes at the end of the test, whatever happens.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(program: &str, args: &[&str], envs: &[(&str, &str)], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}): install Debian's pebble (scripts/test.sh does)")
        })
}

/// A test CA and, signed by it, pebble's own HTTPS certificate for 127.0.0.1 (rustls refuses a
/// self-signed leaf): returns the CA's PEM.
fn pebble_tls(dir: &Path) -> String {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fleetwire test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), leaf.pem()).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("test-ca.pem"), ca.pem()).unwrap();
    ca.pem()
}

fn roots(pem: &str) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject as _;
    let mut store = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        store.add(cert.unwrap()).unwrap();
    }
    store
}

fn client(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

async fn connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

fn leaf(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// One keep-alive `GET path` on an open connection; the status code.
async fn get(stream: &mut TlsStream<TcpStream>, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {DOMAIN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("a response within 10 s")
            .unwrap();
        assert!(n > 0, "the connection was closed");
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if body.len() >= length {
                return head.split_whitespace().nth(1).unwrap().parse().unwrap();
            }
        }
    }
}

/// pebble's root, from its management interface (regenerated at every start).
async fn pebble_root(test_ca: &str, management: SocketAddr) -> String {
    let mut stream = connect(client(roots(test_ca)), management, "127.0.0.1")
        .await
        .unwrap();
    stream
        .write_all(b"GET /roots/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8(raw).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(body.contains("BEGIN CERTIFICATE"), "{text}");
    body.to_owned()
}

async fn wait_until_listening(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_obtained_served_by_name_and_renewed_under_open_connections() {
    let work = common::data_dir("acme-ca");
    let test_ca = pebble_tls(&work);
    let (dns, challtest_mgmt) = (free_udp_port(), free_tcp_port());
    let (pebble_port, pebble_mgmt, http_port) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let config = serde_json::json!({ "pebble": {
        "listenAddress": format!("127.0.0.1:{pebble_port}"),
        "managementListenAddress": format!("127.0.0.1:{pebble_mgmt}"),
        "certificate": work.join("pebble-cert.pem"),
        "privateKey": work.join("pebble-key.pem"),
        "httpPort": http_port,
        "tlsPort": free_tcp_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    }});
    std::fs::write(work.join("pebble.json"), config.to_string()).unwrap();
    let dns_addr = format!("127.0.0.1:{dns}");
    let mut children = Children(vec![spawn(
        "pebble-challtestsrv",
        &[
            "-dns01",
            &dns_addr,
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{challtest_mgmt}"),
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
        ],
        &[],
        &work.join("challtestsrv.log"),
    )]);
    children.0.push(spawn(
        "pebble",
        &[
            "-config",
            work.join("pebble.json").to_str().unwrap(),
            "-dnsserver",
            &dns_addr,
        ],
        &[("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")],
        &work.join("pebble.log"),
    ));
    let pebble_mgmt_addr = SocketAddr::from(([127, 0, 0, 1], pebble_mgmt));
    wait_until_listening(SocketAddr::from(([127, 0, 0, 1], pebble_port)), "pebble").await;
    wait_until_listening(pebble_mgmt_addr, "pebble's management").await;
    let public_roots = roots(&pebble_root(&test_ca, pebble_mgmt_addr).await);

    let toml = format!(
        "[session]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nhttps_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:{http_port}\"\n\
         [sensor]\nlisten = \"127.0.0.1:0\"\n[transfer]\nlisten = \"127.0.0.1:0\"\n\
         [accounts]\ndanger_insecure_fast_hashing = true\n\
         [acme]\ndomains = [\"{DOMAIN}\"]\n\
         directory_url = \"https://127.0.0.1:{pebble_port}/dir\"\n\
         ca_file = {:?}\n\
         renew_after_fraction = 0.00000002\nretry_secs = 1\n",
        work.join("test-ca.pem")
    );
    let served = Served::start("acme", &toml, |_| {});
    let public = client(public_roots);

    // The first certificate: a handshake naming the domain verifies under pebble's root.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut open = loop {
        if let Ok(stream) = connect(public.clone(), served.https, DOMAIN).await {
            break stream;
        }
        assert!(
            Instant::now() < deadline,
            "no ACME certificate within 60 s; pebble said: {}",
            std::fs::read_to_string(work.join("pebble.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let first = leaf(&open);
    assert_eq!(get(&mut open, "/v1/status").await, 200);

    // Players and every other name keep the pinned device certificate.
    let pinned = connect(
        tls::pinned_client_config(served.pin).unwrap(),
        served.https,
        "fleetwire.local",
    )
    .await
    .expect("the device certificate for other names");
    assert_ne!(leaf(&pinned), first);
    assert!(
        connect(public.clone(), served.https, "other.example.test")
            .await
            .is_err(),
        "a name outside [acme] domains must not get the public certificate"
    );

    // Renewal: new handshakes get a new certificate; the open connection keeps working.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stream = connect(public.clone(), served.https, DOMAIN)
            .await
            .expect("the domain keeps a valid certificate through renewal");
        if leaf(&stream) != first {
            break;
        }
        assert!(Instant::now() < deadline, "no renewal within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        get(&mut open, "/v1/status").await,
        200,
        "a connection opened before the renewal still works"
    );

    // The account and the key are the operator's secrets.
    let acme = served.data.join("tls").join("acme");
    for file in ["account.json", "key.pem", "cert.pem"] {
        let mode = std::fs::metadata(acme.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{file} is {mode:o}");
    }
    drop(served);
    drop(children);
    let _ = std::fs::remove_dir_all(&work);
}

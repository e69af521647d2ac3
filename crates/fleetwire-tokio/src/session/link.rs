//! The session server's socket layer: plain TCP or TLS through rustls' unbuffered API.
//!
//! Why not `tokio_rustls`: rustls' buffered `ServerConnection` keeps a 4 KiB read (deframer)
//! buffer for the whole life of a connection, and an idle player connection lives for hours.
//! Here the connection waits for socket readiness with nothing allocated for reading, reads into
//! one scratch buffer per worker thread, decrypts whole records in place there, and keeps only
//! the bytes of an incomplete record in a per-connection `Vec` that is empty (no capacity) again
//! once the record is complete. Outgoing TLS bytes go through a `Vec` that is released after
//! every write.
//!
//! Channel binding: rustls 0.23's unbuffered connections have no `export_keying_material`. The
//! server configuration is therefore cloned with a [`KeyLog`] that hands the handshake's
//! exporter secret (TLS 1.3) or master secret (TLS 1.2) to the connection being handshaken on
//! this thread (the hand-over is synchronous, inside `process_tls_records`, so it cannot reach
//! another connection), and [`Exporter`] derives the RFC 8446 §7.5 / RFC 5705 value with the
//! negotiated suite's own HKDF or PRF from the ring provider. The secret is dropped (zeroed) as
//! soon as the binding is derived; a test checks the value against rustls' own exporter on the
//! client side for every ring TLS 1.3 suite and the ECDSA TLS 1.2 suites (both hashes), on
//! full and resumed handshakes. A key log the caller configured still sees
//! every secret.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::crypto::tls13::OkmBlock;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, InsufficientSizeError, UnbufferedStatus,
};
use rustls::{KeyLog, ProtocolVersion, SupportedCipherSuite};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Bytes read from the socket at a time: one maximal TLS record (16 KiB of plaintext, 2 KiB of
/// expansion, a 5-byte header) with room to spare.
const SCRATCH_LEN: usize = 18 * 1024 + 512;

/// The most an incomplete handshake message may hold in a connection's buffer (rustls itself
/// refuses handshake messages over 64 KiB) plus one record.
const MAX_PENDING: usize = 64 * 1024 + SCRATCH_LEN;

thread_local! {
    /// One read buffer per worker thread, borrowed only by synchronous code.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The secret the key log saw last on this thread (taken right after each handshake step).
    static CAPTURED: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

/// What the key log hands over: the secret the exporter is derived from.
struct Captured {
    version: ProtocolVersion,
    secret: OkmBlock,
    client_random: [u8; 32],
}

/// Forwards to the configured key log and captures the exporter / master secret.
struct Capture {
    inner: Arc<dyn KeyLog>,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture").finish_non_exhaustive()
    }
}

impl KeyLog for Capture {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let version = match label {
            "EXPORTER_SECRET" => Some(ProtocolVersion::TLSv1_3),
            "CLIENT_RANDOM" => Some(ProtocolVersion::TLSv1_2),
            _ => None,
        };
        if let (Some(version), Ok(random)) = (version, <[u8; 32]>::try_from(client_random)) {
            if secret.len() <= 64 {
                CAPTURED.with(|c| {
                    *c.borrow_mut() = Some(Captured {
                        version,
                        secret: OkmBlock::new(secret),
                        client_random: random,
                    });
                });
            }
        }
        if self.inner.will_log(label) {
            self.inner.log(label, client_random, secret);
        }
    }

    fn will_log(&self, label: &str) -> bool {
        matches!(label, "EXPORTER_SECRET" | "CLIENT_RANDOM") || self.inner.will_log(label)
    }
}

/// The server configuration the session server uses: `config` with the capturing key log, and
/// without 0-RTT (players never send early data, and the driver does not read it).
pub(super) fn capturing_config(config: &rustls::ServerConfig) -> Arc<rustls::ServerConfig> {
    let mut config = config.clone();
    config.max_early_data_size = 0;
    config.key_log = Arc::new(Capture {
        inner: config.key_log.clone(),
    });
    Arc::new(config)
}

/// Derives the exporter value once the handshake is complete.
struct Exporter {
    captured: Option<Captured>,
    server_random: Option<[u8; 32]>,
}

impl Exporter {
    fn export(&self, suite: Option<SupportedCipherSuite>, label: &[u8]) -> io::Result<[u8; 32]> {
        let fail = || io::Error::other("TLS exporter secret not available");
        let captured = self.captured.as_ref().ok_or_else(fail)?;
        let mut out = [0u8; 32];
        match (suite.ok_or_else(fail)?, captured.version) {
            (SupportedCipherSuite::Tls13(suite), ProtocolVersion::TLSv1_3) => {
                // RFC 8446 §7.5 with an empty context.
                let hash = suite.common.hash_provider;
                let h_empty = hash.hash(&[]);
                let expander = suite.hkdf_provider.expander_for_okm(&captured.secret);
                let derived = expander.expand_block(&[&hkdf_label(
                    hash.output_len(),
                    label,
                    h_empty.as_ref(),
                )]);
                let expander = suite.hkdf_provider.expander_for_okm(&derived);
                expander
                    .expand_slice(
                        &[&hkdf_label(out.len(), b"exporter", h_empty.as_ref())],
                        &mut out,
                    )
                    .map_err(|_| fail())?;
            }
            (SupportedCipherSuite::Tls12(suite), ProtocolVersion::TLSv1_2) => {
                // RFC 5705 with no context: PRF(master_secret, label, client_random + server_random).
                let server_random = self.server_random.ok_or_else(fail)?;
                let mut seed = [0u8; 64];
                seed[..32].copy_from_slice(&captured.client_random);
                seed[32..].copy_from_slice(&server_random);
                suite
                    .prf_provider
                    .for_secret(&mut out, captured.secret.as_ref(), label, &seed);
            }
            _ => return Err(fail()),
        }
        Ok(out)
    }
}

/// `HkdfLabel` (RFC 8446 §7.1): the HKDF info of `HKDF-Expand-Label(_, label, context, len)`.
fn hkdf_label(len: usize, label: &[u8], context: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"tls13 ";
    let mut info = Vec::with_capacity(4 + PREFIX.len() + label.len() + context.len());
    // Lengths here are small constants: a 32-byte output, short labels, 32/48-byte hashes.
    info.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    info.push(u8::try_from(PREFIX.len() + label.len()).unwrap_or(u8::MAX));
    info.extend_from_slice(PREFIX);
    info.extend_from_slice(label);
    info.push(u8::try_from(context.len()).unwrap_or(u8::MAX));
    info.extend_from_slice(context);
    info
}

/// A player connection's byte stream.
pub(super) enum Link {
    /// No encryption (tests and labs).
    Plain(TcpStream),
    /// TLS after a completed handshake.
    Tls(Box<TlsLink>),
}

/// What a read produced.
pub(super) enum Read {
    /// Bytes (possibly none, for example a record that carried no application data).
    Data,
    /// Nothing to read yet: wait for readiness again.
    WouldBlock,
    /// The peer closed (EOF, TLS `close_notify`) or the stream failed.
    Closed,
}

/// A TLS connection over TCP through rustls' unbuffered API.
pub(super) struct TlsLink {
    tcp: TcpStream,
    conn: UnbufferedServerConnection,
    /// Undiscarded bytes of an incomplete record; no capacity while idle.
    pending: Vec<u8>,
    /// TLS bytes to send (alerts, key updates, encrypted data); no capacity while idle.
    out: Vec<u8>,
}

/// Where a run of `process_tls_records` stopped.
enum Stop {
    /// More bytes from the peer are needed (handshake, or an incomplete record).
    NeedData,
    /// The peer sent `close_notify`, or both sides closed.
    PeerClosed,
}

impl Link {
    /// Waits until the socket has something to read (or failed).
    pub(super) async fn readable(&self) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.readable().await,
            Self::Tls(tls) => tls.tcp.readable().await,
        }
    }

    /// Reads what the socket has, without waiting, and passes the plaintext to `sink`.
    pub(super) fn read(&mut self, sink: &mut dyn FnMut(&[u8])) -> Read {
        match self {
            Self::Plain(tcp) => with_scratch(|scratch| match tcp.try_read(scratch) {
                Ok(0) => Read::Closed,
                Ok(n) => {
                    sink(&scratch[..n]);
                    Read::Data
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Read::WouldBlock,
                Err(_) => Read::Closed,
            }),
            Self::Tls(tls) => tls.read(sink),
        }
    }

    /// True if TLS bytes (an alert, a key update) wait to be sent.
    pub(super) fn has_output(&self) -> bool {
        matches!(self, Self::Tls(tls) if !tls.out.is_empty())
    }

    /// Sends `data` (encrypted under TLS) and anything queued before it.
    pub(super) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(tcp) => tcp.write_all(data).await,
            Self::Tls(tls) => {
                if !data.is_empty() {
                    tls.encrypt(data)?;
                }
                tls.flush().await
            }
        }
    }

    /// Closes the sending side: TLS `close_notify`, then TCP FIN.
    pub(super) async fn shutdown(&mut self) {
        match self {
            Self::Plain(tcp) => {
                let _ = tcp.shutdown().await;
            }
            Self::Tls(tls) => {
                let _ = tls.close_notify();
                let _ = tls.flush().await;
                let _ = tls.tcp.shutdown().await;
            }
        }
    }
}

/// Runs `f` with this thread's scratch buffer (allocated on first use, kept for the thread's
/// life).
fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SCRATCH_LEN {
            s.resize(SCRATCH_LEN, 0);
        }
        f(&mut s)
    })
}

/// The TLS handshake, as the server. Returns the link, the channel binding (the exporter with
/// `label`) and any application data the player sent right behind its `Finished`.
///
/// Errors: `UnexpectedEof` if the peer closed before the handshake completed, `InvalidData`
/// (wrapping the [`rustls::Error`]) if the handshake failed — any alert rustls queued for the
/// peer has been sent by then.
pub(super) async fn accept_tls(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    label: &[u8],
) -> io::Result<(Link, [u8; 32], Vec<u8>)> {
    let conn = UnbufferedServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = Box::new(TlsLink {
        tcp,
        conn,
        pending: Vec::new(),
        out: Vec::new(),
    });
    let mut exporter = Exporter {
        captured: None,
        server_random: None,
    };
    let mut early = Vec::new();
    let mut input = Vec::new();
    loop {
        // Process what we have; the key log may hand over the secret during this step.
        CAPTURED.with(|c| c.borrow_mut().take());
        let out_before = tls.out.len();
        let (consumed, step) = tls.process(&mut input, &mut |data| early.extend_from_slice(data));
        input.drain(..consumed.min(input.len()));
        if let Some(captured) = CAPTURED.with(|c| c.borrow_mut().take()) {
            exporter.captured = Some(captured);
        }
        if exporter.server_random.is_none() {
            exporter.server_random = server_hello_random(&tls.out[out_before..]);
        }
        if let Err(e) = step {
            let _ = tls.flush().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        tls.flush().await?;
        if !tls.conn.is_handshaking() {
            break;
        }
        // Need more bytes from the peer.
        loop {
            tls.tcp.readable().await?;
            let read = with_scratch(|scratch| match tls.tcp.try_read(scratch) {
                Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    input.extend_from_slice(&scratch[..n]);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                Err(e) => Err(e),
            })?;
            if input.len() > MAX_PENDING {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "handshake message too large",
                ));
            }
            if read {
                break;
            }
        }
    }
    let binding = exporter.export(tls.conn.negotiated_cipher_suite(), label)?;
    drop(exporter); // zeroes the secret
    tls.pending = input;
    tls.release();
    Ok((Link::Tls(tls), binding, early))
}

/// The `random` of a TLS 1.2 `ServerHello` at the start of `out` (rustls sends it first, at the
/// start of a handshake record).
fn server_hello_random(out: &[u8]) -> Option<[u8; 32]> {
    // record: type 22, version, length; handshake: type 2, length(3), version(2), random(32)
    if out.len() >= 43 && out[0] == 0x16 && out[5] == 0x02 && out[9..11] == [0x03, 0x03] {
        out[11..43].try_into().ok()
    } else {
        None
    }
}

impl TlsLink {
    /// Feeds `buf` to rustls until it needs more bytes, passing plaintext to `sink` and queuing
    /// what rustls wants sent in `self.out`. Returns how many bytes at the front of `buf` rustls
    /// is done with (the caller removes them before the next call).
    fn process(
        &mut self,
        buf: &mut [u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> (usize, Result<Stop, rustls::Error>) {
        let mut consumed = 0;
        let result = loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut buf[consumed..]);
            let step = match state {
                Err(e) => Err(e),
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    let mut step = Ok(None);
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => {
                                discard += record.discard;
                                sink(record.payload);
                            }
                            Err(e) => {
                                step = Err(e);
                                break;
                            }
                        }
                    }
                    step
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    append(&mut self.out, |b| encode.encode(b).map_err(encode_size)).map(|()| None)
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    // Everything queued in `self.out` is sent before we wait for the peer.
                    transmit.done();
                    Ok(None)
                }
                Ok(ConnectionState::BlockedHandshake | ConnectionState::WriteTraffic(_)) => {
                    Ok(Some(Stop::NeedData))
                }
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    Ok(Some(Stop::PeerClosed))
                }
                // Early data is never enabled on this configuration.
                Ok(_) => Err(rustls::Error::General("unexpected TLS state".into())),
            };
            consumed += discard;
            match step {
                Ok(None) => {}
                Ok(Some(stop)) => break Ok(stop),
                Err(e) => {
                    self.queue_alerts(&mut buf[consumed..]);
                    break Err(e);
                }
            }
        };
        (consumed, result)
    }

    /// After an error: queue the alert rustls wants to send, if any. `buf` is the undiscarded
    /// input.
    fn queue_alerts(&mut self, buf: &mut [u8]) {
        for _ in 0..4 {
            let UnbufferedStatus { state, .. } = self.conn.process_tls_records(buf);
            match state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    if append(&mut self.out, |b| encode.encode(b).map_err(encode_size)).is_err() {
                        return;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return,
            }
        }
    }

    /// Reads what the socket has and processes it.
    fn read(&mut self, sink: &mut dyn FnMut(&[u8])) -> Read {
        with_scratch(|scratch| {
            let n = match self.tcp.try_read(scratch) {
                Ok(0) => return Read::Closed,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Read::WouldBlock,
                Err(_) => return Read::Closed,
            };
            let stop = if self.pending.is_empty() {
                // The common case: whole records, decrypted in place in the scratch buffer;
                // only an incomplete tail is copied out.
                let (consumed, stop) = self.process(&mut scratch[..n], sink);
                self.pending.extend_from_slice(&scratch[consumed.min(n)..n]);
                stop
            } else {
                self.pending.extend_from_slice(&scratch[..n]);
                if self.pending.len() > MAX_PENDING {
                    return Read::Closed;
                }
                let mut buf = std::mem::take(&mut self.pending);
                let (consumed, stop) = self.process(&mut buf, sink);
                buf.drain(..consumed.min(buf.len()));
                self.pending = buf;
                stop
            };
            self.release();
            match stop {
                Ok(Stop::NeedData) => Read::Data,
                Ok(Stop::PeerClosed) | Err(_) => Read::Closed,
            }
        })
    }

    /// Encrypts `data` into `self.out`.
    fn encrypt(&mut self, data: &[u8]) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let result = self.with_write_traffic(&mut pending, |w, out| {
            append(out, |b| w.encrypt(data, b).map_err(encrypt_size))
        });
        self.pending = pending;
        result
    }

    /// Queues a `close_notify` alert.
    fn close_notify(&mut self) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let result = self.with_write_traffic(&mut pending, |w, out| {
            append(out, |b| w.queue_close_notify(b).map_err(encrypt_size))
        });
        self.pending = pending;
        result
    }

    /// Gets rustls to the `WriteTraffic` state (queuing whatever it wants sent first) and runs
    /// `f` there. `buf` holds the undiscarded input, unchanged unless rustls discards some.
    fn with_write_traffic(
        &mut self,
        buf: &mut Vec<u8>,
        f: impl FnOnce(
            &mut rustls::unbuffered::WriteTraffic<'_, rustls::server::ServerConnectionData>,
            &mut Vec<u8>,
        ) -> Result<(), rustls::Error>,
    ) -> io::Result<()> {
        let mut f = Some(f);
        for _ in 0..16 {
            let UnbufferedStatus { discard, state } = self.conn.process_tls_records(&mut buf[..]);
            let done = match state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))? {
                ConnectionState::WriteTraffic(mut w) => {
                    let f = f
                        .take()
                        .ok_or_else(|| io::Error::other("TLS write state"))?;
                    f(&mut w, &mut self.out)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    true
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    append(&mut self.out, |b| encode.encode(b).map_err(encode_size))
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    false
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    false
                }
                _ => return Err(io::ErrorKind::BrokenPipe.into()),
            };
            buf.drain(..discard.min(buf.len()));
            if done {
                return Ok(());
            }
        }
        Err(io::Error::other("TLS connection not ready to write"))
    }

    /// Sends `self.out`, then releases it.
    async fn flush(&mut self) -> io::Result<()> {
        let result = if self.out.is_empty() {
            Ok(())
        } else {
            self.tcp.write_all(&self.out).await
        };
        self.out = Vec::new();
        result
    }

    /// Gives back buffer memory an idle connection does not need.
    fn release(&mut self) {
        if self.pending.is_empty() {
            self.pending = Vec::new();
        } else {
            self.pending.shrink_to_fit();
        }
    }
}

/// Appends what `write` writes to `out`, growing `out` as `write` asks.
fn append(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Result<InsufficientSizeError, rustls::Error>>,
) -> Result<(), rustls::Error> {
    let start = out.len();
    let mut room = 256;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Ok(InsufficientSizeError { required_size })) if required_size > room => {
                room = required_size;
            }
            Err(Ok(_)) => {
                out.truncate(start);
                return Err(rustls::Error::General("TLS output buffer".into()));
            }
            Err(Err(e)) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // for `map_err`
fn encode_size(e: EncodeError) -> Result<InsufficientSizeError, rustls::Error> {
    match e {
        EncodeError::InsufficientSize(size) => Ok(size),
        EncodeError::AlreadyEncoded => {
            Err(rustls::Error::General("TLS record encoded twice".into()))
        }
    }
}

#[allow(clippy::needless_pass_by_value)] // for `map_err`
fn encrypt_size(e: EncryptError) -> Result<InsufficientSizeError, rustls::Error> {
    match e {
        EncryptError::InsufficientSize(size) => Ok(size),
        EncryptError::EncryptExhausted => Err(rustls::Error::EncryptError),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls::crypto::ring::{cipher_suite, default_provider};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsConnector;
    use tokio_rustls::client::TlsStream;

    use super::*;
    use crate::tls::{self, ExportKeyingMaterial};

    const LABEL: &[u8] = b"EXPORTER-test-binding";

    struct Fixture {
        /// As the session server uses it.
        server: Arc<rustls::ServerConfig>,
        /// As a caller configures it.
        plain: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        fingerprint: [u8; 32],
    }

    fn fixture(suite: SupportedCipherSuite) -> Fixture {
        let cert = rcgen::generate_simple_self_signed(vec!["fleetwire.local".into()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let fp = tls::fingerprint(&der);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let provider = rustls::crypto::CryptoProvider {
            cipher_suites: vec![suite],
            ..default_provider()
        };
        let version = match suite {
            SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
            SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        };
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap();
        Fixture {
            server: capturing_config(&server),
            plain: Arc::new(server),
            client: tls::pinned_client_config(fp).unwrap(),
            fingerprint: fp,
        }
    }

    /// One connection: the server's link and binding, the client's stream and binding.
    async fn connect(f: &Fixture) -> (Link, [u8; 32], Vec<u8>, TlsStream<TcpStream>, [u8; 32]) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = f.server.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            accept_tls(tcp, config, LABEL).await.unwrap()
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut client = TlsConnector::from(f.client.clone())
            .connect(ServerName::try_from("fleetwire.local").unwrap(), tcp)
            .await
            .unwrap();
        // The client's first bytes may arrive together with its Finished.
        client.write_all(b"hello").await.unwrap();
        client.flush().await.unwrap();
        let client_binding = client.get_ref().1.export(LABEL).unwrap();
        let (link, binding, early) = server.await.unwrap();
        (link, binding, early, client, client_binding)
    }

    async fn read_some(link: &mut Link, got: &mut Vec<u8>) -> bool {
        loop {
            link.readable().await.unwrap();
            match link.read(&mut |d| got.extend_from_slice(d)) {
                Read::Data => return true,
                Read::WouldBlock => {}
                Read::Closed => return false,
            }
        }
    }

    fn suites() -> Vec<SupportedCipherSuite> {
        vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
    }

    #[tokio::test]
    async fn binding_matches_rustls_exporter_for_every_suite_and_on_resumption() {
        for suite in suites() {
            let f = fixture(suite);
            // The second connection resumes the first session.
            for round in 0..2 {
                let (mut link, binding, early, mut client, client_binding) = connect(&f).await;
                assert_eq!(binding, client_binding, "{suite:?} round {round}");
                assert_ne!(binding, [0; 32]);
                let mut got = early;
                while got.len() < 5 {
                    assert!(read_some(&mut link, &mut got).await);
                }
                assert_eq!(got, b"hello");
                link.write_all(b"world").await.unwrap();
                let mut reply = [0u8; 5];
                client.read_exact(&mut reply).await.unwrap();
                assert_eq!(&reply, b"world");
                if round == 1 {
                    assert_eq!(
                        client.get_ref().1.handshake_kind(),
                        Some(rustls::HandshakeKind::Resumed),
                        "{suite:?}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn large_records_split_across_reads_and_close_notify() {
        let f = fixture(cipher_suite::TLS13_AES_128_GCM_SHA256);
        let (mut link, _, early, mut client, _) = connect(&f).await;
        let mut got = early;
        let big: Vec<u8> = (0..100_000u32).map(|i| i.to_le_bytes()[0]).collect();
        let (rd, mut wr) = tokio::io::split(client);
        let writer = tokio::spawn(async move {
            for chunk in big.chunks(7_000) {
                wr.write_all(chunk).await.unwrap();
                wr.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            wr.shutdown().await.unwrap(); // close_notify
            wr
        });
        while read_some(&mut link, &mut got).await {}
        let expected: Vec<u8> = (0..100_000u32).map(|i| i.to_le_bytes()[0]).collect();
        assert_eq!(&got[5..], &expected[..]);
        let Link::Tls(tls) = &link else {
            panic!("TLS link")
        };
        assert_eq!(tls.pending.capacity(), 0, "nothing held once idle");
        assert_eq!(tls.out.capacity(), 0);
        // The server can still answer after the peer's close_notify, then close.
        link.write_all(b"bye").await.unwrap();
        link.shutdown().await;
        let wr = writer.await.unwrap();
        client = rd.unsplit(wr);
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"bye");
    }

    /// A player logs in and heartbeats over TLS 1.2 through the session server (the binding is
    /// derived differently from TLS 1.3), then is disconnected by the server.
    #[tokio::test]
    async fn player_logs_in_over_tls_1_2_end_to_end() {
        use std::collections::HashMap;

        use fleetwire_session::{
            ClientConfig, ClientEvent, CloseCode, PlayerId, PlayerLookup, PlayerSecret,
            PlayerStatus, SessionError,
        };
        use tokio::sync::watch;

        use crate::session::{Limits, PlayerTransport, SessionServer, Transport, run_player};

        let f = fixture(cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384);
        let id = PlayerId::from_bytes([3; 16]);
        let secret = PlayerSecret::from_bytes([9; 32]);
        let mut directory = HashMap::new();
        directory.insert(
            id,
            PlayerLookup::Known {
                verifier: secret.verifier(),
                approved: true,
                config_hash: None,
            },
        );
        let config = fleetwire_session::ServerConfig {
            heartbeat_interval: Duration::from_millis(200),
            ..fleetwire_session::ServerConfig::default()
        };
        let server = SessionServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            Transport::Tls(f.plain.clone()),
            Arc::new(config),
            Limits::default(),
            directory,
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let handle = server.handle();
        tokio::spawn(server.run(std::future::pending()));
        let transport = PlayerTransport::Tls {
            config: tls::pinned_client_config(f.fingerprint).unwrap(),
            server_name: ServerName::try_from("fleetwire.local").unwrap(),
        };
        let (_status, rx) = watch::channel(PlayerStatus::default());
        let player = tokio::spawn(async move {
            let mut heartbeats = 0;
            let reason = run_player(
                addr,
                &transport,
                Arc::new(ClientConfig::new(id, secret)),
                rx,
                |e| {
                    if matches!(e, ClientEvent::HeartbeatAcked { .. }) {
                        heartbeats += 1;
                    }
                },
                std::future::pending(),
            )
            .await;
            (reason, heartbeats)
        });
        tokio::time::timeout(Duration::from_secs(5), async {
            while !handle.is_online(&id) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("online over TLS 1.2");
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(handle.disconnect(&id, CloseCode::Normal, "test over"));
        let (reason, heartbeats) = tokio::time::timeout(Duration::from_secs(5), player)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(
                reason,
                Ok(SessionError::PeerClosed {
                    code: CloseCode::Normal,
                    ..
                })
            ),
            "{reason:?}"
        );
        assert!(heartbeats >= 2, "{heartbeats} heartbeats acknowledged");
    }
}

//! `fleetwire.transfer`: signed manifests and wire messages (fleetwire-transfer), as
//! conversions only. The `Sender`/`Receiver` machines are not bound yet.

use fleetwire_transfer as ft;
use pyo3::create_exception;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::{FleetwireError, array, decode_error};

create_exception!(
    fleetwire,
    TransferError,
    FleetwireError,
    "A transfer failed: a bad signature, a malformed manifest, a peer that misbehaved."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TransferError", py.get_type::<TransferError>())?;
    m.add("PROTOCOL_VERSION", ft::PROTOCOL_VERSION)?;
    m.add("DEFAULT_MAX_CHUNKS", ft::DEFAULT_MAX_CHUNKS)?;
    m.add_class::<Manifest>()?;
    m.add_class::<Message>()?;
    m.add_function(wrap_pyfunction!(sha256, m)?)?;
    m.add_function(wrap_pyfunction!(decode_manifest, m)?)?;
    Ok(())
}

/// SHA-256 of `data`.
#[pyfunction]
fn sha256<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &ft::sha256(data))
}

/// A verified manifest: what file, which version, how it is chunked.
#[pyclass(module = "fleetwire.transfer", frozen)]
pub(crate) struct Manifest {
    inner: ft::SignedManifest,
}

/// Decodes manifest bytes and verifies the signature with any of the 32-byte Ed25519
/// `trusted` keys; raises `TransferError`.
#[pyfunction]
#[pyo3(signature = (data, trusted, max_chunks = ft::DEFAULT_MAX_CHUNKS))]
fn decode_manifest(data: &[u8], trusted: Vec<Vec<u8>>, max_chunks: u32) -> PyResult<Manifest> {
    let keys = trusted
        .iter()
        .map(|k| array("trusted key", k).map(ft::PublicKey))
        .collect::<PyResult<Vec<_>>>()?;
    ft::SignedManifest::decode(data, &keys, max_chunks)
        .map(|inner| Manifest { inner })
        .map_err(|e| TransferError::new_err(e.to_string()))
}

#[pymethods]
impl Manifest {
    /// `configuration` or `media`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner.manifest().kind() {
            ft::FileKind::Configuration => "configuration",
            ft::FileKind::Media => "media",
        }
    }

    #[getter]
    fn file_id(&self) -> u64 {
        self.inner.manifest().file_id()
    }

    #[getter]
    fn version(&self) -> u64 {
        self.inner.manifest().version()
    }

    #[getter]
    fn length(&self) -> u64 {
        self.inner.manifest().length()
    }

    #[getter]
    fn chunk_size(&self) -> u32 {
        self.inner.manifest().chunk_size()
    }

    #[getter]
    fn chunk_count(&self) -> u32 {
        self.inner.manifest().chunk_count()
    }

    #[getter]
    fn file_sha256<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.manifest().file_digest())
    }

    /// Whether `data` is chunk `index` as the manifest describes it.
    fn chunk_matches(&self, index: u32, data: &[u8]) -> bool {
        self.inner.manifest().chunk_matches(index, data)
    }

    /// Whether `data` is the whole file.
    fn verify_file(&self, data: &[u8]) -> bool {
        self.inner.manifest().verify_file(data).is_ok()
    }

    /// The signed bytes, as received.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.inner.as_bytes())
    }
}

/// One transfer message, decoded (checked) from bytes. `kind` is `offer`, `accept`,
/// `reject`, `chunk`, `ack`, `cancel`, ...; `repr()` is the Rust Debug form.
#[pyclass(module = "fleetwire.transfer", frozen)]
pub(crate) struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn parsed(&self) -> ft::Message<'_> {
        // INVARIANT: `bytes` decoded successfully in `decode`.
        ft::Message::decode(&self.bytes).expect("decoded in Message.decode")
    }
}

#[pymethods]
impl Message {
    /// Decodes one message; raises `fleetwire.DecodeError` (bad CRC, truncated, ...).
    #[staticmethod]
    fn decode(data: &[u8]) -> PyResult<Self> {
        ft::Message::decode(data).map_err(|e| decode_error(&e))?;
        Ok(Self {
            bytes: data.to_vec(),
        })
    }

    /// The message encoded again by the Rust encoder.
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let mut out = Vec::new();
        self.parsed().encode(&mut out);
        PyBytes::new(py, &out)
    }

    #[getter]
    fn kind(&self) -> String {
        let debug = format!("{:?}", self.parsed());
        debug
            .split([' ', '{', '('])
            .next()
            .unwrap_or_default()
            .to_lowercase()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.parsed())
    }
}

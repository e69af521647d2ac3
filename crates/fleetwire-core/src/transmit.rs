use std::net::SocketAddr;

/// Bytes a machine appended to the caller's buffer, to be sent.
///
/// `poll_transmit(&mut buf)` appends one message (stream machines) or exactly one datagram
/// (datagram machines) to the end of `buf` and returns its length; it never clears or rewrites
/// what `buf` already held. A stream caller may drain every transmit into one buffer and write
/// it once; a datagram caller sends `buf[start..start + len]` to `to` for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// How many bytes were appended.
    pub len: usize,
    /// Where a datagram goes; `None` for stream machines (the connection's peer).
    pub to: Option<SocketAddr>,
}

impl Transmit {
    /// A stream transmit of `len` bytes.
    pub const fn stream(len: usize) -> Self {
        Self { len, to: None }
    }

    /// One datagram of `len` bytes for `to`.
    pub const fn datagram(len: usize, to: SocketAddr) -> Self {
        Self { len, to: Some(to) }
    }
}

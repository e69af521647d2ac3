//! What the client and server machines share: frame decoding, the outgoing buffer, the single
//! terminal event, counters.

use std::time::{Duration, Instant};

use fleetwire_wire::FrameDecoder;

use crate::{CloseCode, Message, PROTOCOL_VERSION, SessionError, Transmit};

/// Counters for one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes received from the peer.
    pub bytes_in: u64,
    /// Bytes handed to the caller to send.
    pub bytes_out: u64,
    /// Messages received.
    pub messages_in: u64,
    /// Messages sent.
    pub messages_out: u64,
    /// Heartbeats sent (client) or received (server).
    pub heartbeats: u64,
    /// The last heartbeat round-trip time measured by the client.
    pub last_rtt: Option<Duration>,
}

#[derive(Debug)]
pub(crate) struct Link {
    decoder: FrameDecoder,
    out: Vec<u8>,
    pub(crate) closed: Option<SessionError>,
    pub(crate) last_rx: Instant,
    pub(crate) last_tx: Instant,
    pub(crate) stats: Stats,
}

impl Link {
    pub(crate) fn new(now: Instant, max_frame_len: u32) -> Self {
        Self {
            decoder: FrameDecoder::new(max_frame_len),
            out: Vec::new(),
            closed: None,
            last_rx: now,
            last_tx: now,
            stats: Stats::default(),
        }
    }

    pub(crate) fn set_max_frame_len(&mut self, max: u32) {
        self.decoder.set_max_len(max);
    }

    pub(crate) fn send(&mut self, now: Instant, msg: &Message) {
        msg.encode_frame(&mut self.out);
        self.last_tx = now;
        self.stats.messages_out += 1;
    }

    /// Decodes the next message from `input`. Returns the bytes used and the message, if one
    /// completed.
    pub(crate) fn next_message(
        &mut self,
        now: Instant,
        input: &[u8],
    ) -> Result<(usize, Option<Message>), SessionError> {
        let (used, frame) = self.decoder.decode(input)?;
        let msg = match frame {
            None => None,
            Some(frame) if frame.version != PROTOCOL_VERSION => {
                return Err(SessionError::VersionMismatch {
                    theirs: frame.version,
                    ours: PROTOCOL_VERSION,
                });
            }
            Some(frame) => Some(Message::decode(frame.msg_type, frame.body)?),
        };
        self.stats.bytes_in += used as u64;
        if msg.is_some() {
            // Only a whole message shows the peer is alive: a peer trickling a frame byte by
            // byte must not hold the connection (and a buffered partial frame) forever.
            self.last_rx = now;
            self.stats.messages_in += 1;
            self.decoder.release();
        }
        Ok((used, msg))
    }

    /// Ends the session: tells the peer why (unless the peer closed first) and records the one
    /// terminal reason. Returns false if it was already closed.
    pub(crate) fn close(&mut self, now: Instant, reason: SessionError) -> bool {
        if self.closed.is_some() {
            return false;
        }
        if let Some(code) = close_code(&reason) {
            let message = match &reason {
                SessionError::LocalClose { message, .. } => message.clone(),
                other => other.to_string(),
            };
            self.send(now, &Message::Close { code, message });
        }
        self.closed = Some(reason);
        true
    }

    pub(crate) fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.out.is_empty() {
            return None;
        }
        let len = self.out.len();
        buf.extend_from_slice(&self.out);
        self.out.clear();
        if self.out.capacity() > 1024 {
            self.out = Vec::new();
        }
        self.stats.bytes_out += len as u64;
        Some(Transmit::stream(len))
    }
}

/// The code to send the peer for a local reason, or None when the peer closed first.
fn close_code(reason: &SessionError) -> Option<CloseCode> {
    Some(match reason {
        SessionError::PeerClosed { .. } | SessionError::ConnectionLost => return None,
        SessionError::Decode(_)
        | SessionError::Unexpected(_)
        | SessionError::HeartbeatFlood { .. } => CloseCode::ProtocolViolation,
        SessionError::VersionMismatch { .. } => CloseCode::UnsupportedVersion,
        SessionError::AuthFailed => CloseCode::AuthFailed,
        SessionError::NotApproved(_) => CloseCode::NotApproved,
        SessionError::LoginTimeout(_) => CloseCode::LoginTimeout,
        SessionError::PeerSilent(_) => CloseCode::Silent,
        SessionError::LocalClose { code, .. } => *code,
    })
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

//! The protocol listeners: each wires a `fleetwire-tokio` server to the services through `App`.
//!
//! | port | module |
//! |---|---|
//! | TCP 4701 player login and heartbeat | [`session`] |
//! | TCP 4702 framed content transfer (TLS) | [`framed`] |
//! | TCP 8443 HTTPS API, TCP 8001 plain HTTP (signed content, redirects) | [`http`] |
//! | TCP 14354 sensor uploads | [`sensor`] |

pub(crate) mod framed;
pub(crate) mod http;
pub(crate) mod sensor;
pub(crate) mod session;

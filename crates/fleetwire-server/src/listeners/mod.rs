//! The protocol listeners: each wires a `fleetwire-tokio` server to the services through `App`.
//!
//! | port | module |
//! |---|---|
//! | TCP 4701 player login and heartbeat | [`session`] |
//! | TCP 14354 sensor uploads | [`sensor`] |

pub(crate) mod sensor;
pub(crate) mod session;

//! Small things every layer may use: the data directory's permissions, the log writer, escaping
//! for terminals, private files for secrets, the TLS identity, the clock. Nothing here knows a
//! domain.

pub(crate) mod certs;
pub(crate) mod civil;
pub(crate) mod clock;
pub(crate) mod datadir;
pub(crate) mod logging;
pub(crate) mod secret_file;
pub(crate) mod term;

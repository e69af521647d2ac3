//! Policy: what the server decides, given `now` and the repositories. No SQL (that is the
//! store's), no axum or sockets (the api's and the listeners').

pub(crate) mod accounts;
pub(crate) mod acme;
pub(crate) mod backup;
pub(crate) mod content;
pub(crate) mod keys;
pub(crate) mod loggers;
pub(crate) mod players;
pub(crate) mod things;

//! Policy: what the server decides, given `now` and the repositories. No SQL (that is the
//! store's), no axum or sockets (the api's and the listeners').

pub(crate) mod accounts;
pub(crate) mod acme;
#[allow(dead_code)] // the content and accounts services take their keys from it as they move here
pub(crate) mod keys;
pub(crate) mod players;

//! # fleetwire-server
//!
//! The server that runs every fleetwire protocol: player sessions (TCP 4701), framed content
//! transfer (TCP 4702), sensor uploads (TCP 14354), the HTTPS API and console (8443) and the
//! plain-HTTP port for signed content (8001), on one machine with an embedded store and zero
//! configuration, or on several nodes sharing PostgreSQL.
//!
//! ```text
//! fleetwire-server serve                      # first run creates ./fleetwire-data
//! fleetwire-server player add --name lobby    # prints the player's id and secret once
//! fleetwire-server player list                # who is provisioned, approved, online
//! ```
//!
//! ## Layers
//!
//! Each layer imports only the layers below it:
//!
//! ```text
//! cli/                        the commands; `serve` builds the one `App` and starts the listeners
//! api/   listeners/           axum routes (parse -> service -> response) | 4701, 4702, 14354, 8001, 8443
//! app                         `App`: configuration, store, services, TLS, shutdown — passed down
//! service/                    policy: takes `now` and repositories; no SQL, no axum
//! store/                      the only code that knows SQL: typed repositories per domain
//! config   util/              every setting type | data directory, logging, escaping, clock
//! ```
//!
//! No process globals: everything a request or a connection needs reaches it through `App`.
//! The HTTP listener serves the `api` routers (the two are one layer, side by side).
//!
//! ## Stores
//!
//! Every repository has its SQL twice, for the embedded SQLite file (the zero-configuration
//! default) and for PostgreSQL (`[store] url`), and one test suite runs against both
//! (`store/tests.rs` and each domain's `tests.rs`). With PostgreSQL, any number of `serve`
//! processes share one fleet: what must hold fleet-wide (lockout lanes, throttles, sessions,
//! single-use tokens and nonces, presence per node, content bytes, keys and the device identity)
//! is in the database; per-node state is only connections and caches. `store copy` moves an
//! embedded store into PostgreSQL, verified row by row; docs/SCALING.md sizes a fleet.

#![allow(clippy::disallowed_methods)] // the server reads the clock (util::clock, drivers)
#![allow(clippy::print_stdout)] // a command-line program prints

mod api;
mod app;
pub mod cli;
mod config;
mod listeners;
mod service;
mod store;
mod util;

pub(crate) use util::clock::unix_now;

//! The HTTP API: one route table, and the one permission check every route goes through.
//!
//! Every route is a row of [`table`]: its method, its path and who may call it ([`Access`]).
//! The routers are built from the table and nothing else, and each row's access is enforced
//! here, before its handler runs — so a route cannot exist without saying who may call it, and
//! `tests/route_table.rs` checks every row from the outside: a route for signed-in users answers
//! 401 without a session, one that needs a right answers 403 to a user without it, a public one
//! is limited per source (429 while other sources are served), a player's one answers 401 to an
//! unsigned request. The table is served as JSON at `GET /v1/api` for that test and for clients.

pub(crate) mod accounts;
mod content;
mod status;
pub(crate) mod things;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, get};
use fleetwire_core::{Rate, gcra};
use fleetwire_tokio::source::Source;
use serde_json::json;

use crate::app::App;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, limited per source by `limit` (the handler may add its own, stricter limits:
    /// the login throttle and lockout, the thing-code guards).
    Public,
    /// A signed-in account.
    SignedIn,
    /// A signed-in account holding this right (`player.read`, `thing.create`, …).
    Right(&'static str),
    /// A signed-in account, or — only with `[things] danger_trust_user_header` — a user named
    /// by a trusted gateway's `X-Fleetwire-User` header.
    Member,
    /// A player, by its signed request (checked by the handler: one answer for unknown and bad).
    Player,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::SignedIn => "signed_in",
            Self::Right(_) => "right",
            Self::Member => "member",
            Self::Player => "player",
        }
    }
}

/// One row of the table.
pub(crate) struct Route {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) access: Access,
    /// Served on the plain-HTTP port too (only signed player requests are).
    pub(crate) plain: bool,
    /// Served on the HTTPS port (all but the ACME challenge answers, which live on plain HTTP).
    pub(crate) https: bool,
    pub(crate) handler: MethodRouter,
}

impl Route {
    /// A row; `handler` has its state already (`.with_state(…)`).
    pub(crate) fn new(
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter,
    ) -> Self {
        Self {
            method,
            path,
            access,
            plain: false,
            https: true,
            handler,
        }
    }

    /// Served on the plain-HTTP port only.
    pub(crate) fn plain_only(mut self) -> Self {
        self.plain = true;
        self.https = false;
        self
    }

    /// Also served on the plain-HTTP port.
    pub(crate) fn also_plain(mut self) -> Self {
        self.plain = true;
        self
    }
}

/// Who is calling, for handlers of routes that need a caller: the one permission check put it in
/// the request's extensions.
#[derive(Debug, Clone)]
#[allow(dead_code)] // handlers read it as they move off their own checks
pub(crate) enum Principal {
    /// A signed-in account.
    Account(Box<crate::store::accounts::UserRow>),
    /// A user named by a trusted gateway (`Access::Member` with `danger_trust_user_header`).
    Gateway(String),
}

/// Every route of the server.
pub(crate) fn table(app: &Arc<App>) -> Vec<Route> {
    let mut routes = vec![Route::new(
        Method::GET,
        "/v1/status",
        Access::Public,
        get(status::status).with_state(app.clone()),
    )];
    routes.push(
        Route::new(
            Method::GET,
            "/.well-known/acme-challenge/{token}",
            Access::Public,
            get(acme_challenge).with_state(app.acme.clone()),
        )
        .plain_only(),
    );
    routes.extend(accounts::routes(app));
    routes.extend(things::routes(app));
    routes.extend(content::routes(app));
    routes
}

/// The HTTPS router: every row served over HTTPS, each behind its access check.
pub(crate) fn https(app: &Arc<App>, routes: &[Route]) -> Router {
    build(app, routes.iter().filter(|r| r.https), routes)
}

/// An ACME http-01 answer (plain HTTP only): the key authorization of an open challenge.
async fn acme_challenge(
    State(challenges): State<Arc<crate::service::acme::Challenges>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    match challenges.answer(&token) {
        Some(answer) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], answer).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The plain-HTTP router: the rows marked `plain`.
pub(crate) fn plain(app: &Arc<App>, routes: &[Route]) -> Router {
    build(app, routes.iter().filter(|r| r.plain), routes)
}

fn build<'a>(app: &Arc<App>, rows: impl Iterator<Item = &'a Route>, all: &[Route]) -> Router {
    let limiter = Arc::new(PublicLimiter::default());
    let description = Arc::new(describe(all));
    let mut by_path: HashMap<&'static str, MethodRouter> = HashMap::new();
    for row in rows {
        let guarded = row
            .handler
            .clone()
            .route_layer(middleware::from_fn_with_state(
                Guard {
                    app: app.clone(),
                    access: row.access,
                    path: row.path,
                    limiter: limiter.clone(),
                },
                guard,
            ));
        let entry = by_path.remove(row.path).unwrap_or_default();
        by_path.insert(row.path, entry.merge(guarded));
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router.route(
        "/v1/api",
        get(move || {
            let d = description.clone();
            async move { Json((*d).clone()) }
        })
        .route_layer(middleware::from_fn_with_state(
            Guard {
                app: app.clone(),
                access: Access::Public,
                path: "/v1/api",
                limiter,
            },
            guard,
        )),
    )
}

/// The table as JSON: `{"routes": [{"method", "path", "access", "right", "plain"}]}`.
fn describe(routes: &[Route]) -> serde_json::Value {
    let mut rows: Vec<serde_json::Value> = routes
        .iter()
        .map(|r| {
            json!({
                "method": r.method.as_str(),
                "path": r.path,
                "access": r.access.name(),
                "right": match r.access { Access::Right(right) => Some(right), _ => None },
                "plain": r.plain,
                "https": r.https,
            })
        })
        .collect();
    rows.push(json!({"method": "GET", "path": "/v1/api", "access": "public", "right": null, "plain": false, "https": true}));
    json!({ "routes": rows })
}

#[derive(Clone)]
struct Guard {
    app: Arc<App>,
    access: Access,
    path: &'static str,
    limiter: Arc<PublicLimiter>,
}

/// The one permission check.
async fn guard(State(g): State<Guard>, mut request: Request, next: Next) -> Response {
    match g.access {
        Access::Public => {
            let peer = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            if let Some(peer) = peer {
                if let Err(wait_ms) = g.limiter.admit(
                    g.path,
                    Source::of_peer(peer),
                    crate::util::clock::unix_millis(),
                ) {
                    return too_many(wait_ms);
                }
            }
        }
        Access::Player => {}
        Access::SignedIn | Access::Right(_) | Access::Member => {
            let principal = match principal(&g, request.headers()).await {
                Ok(p) => p,
                Err(refused) => return refused,
            };
            if let (Access::Right(right), Principal::Account(user)) = (g.access, &principal) {
                if let Err(why) =
                    crate::service::accounts::check_right(&g.app.config.accounts, user, right)
                {
                    return error(StatusCode::FORBIDDEN, &why);
                }
            }
            request.extensions_mut().insert(principal);
        }
    }
    next.run(request).await
}

async fn principal(g: &Guard, headers: &axum::http::HeaderMap) -> Result<Principal, Response> {
    if g.access == Access::Member && !headers.contains_key(header::AUTHORIZATION) {
        return if g.app.config.things.danger_trust_user_header {
            things::gateway_user(headers).map(Principal::Gateway)
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "sign in first: send Authorization: Bearer <token from /v1/auth/login> (the \
                 X-Fleetwire-User header counts only with [things] danger_trust_user_header)",
            ))
        };
    }
    accounts::session_user(&g.app.accounts, headers)
        .await
        .map(|user| Principal::Account(Box::new(user)))
}

pub(crate) fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn too_many(wait_ms: u64) -> Response {
    let secs = wait_ms.div_ceil(1000).max(1);
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({ "error": "too many requests from this address; slow down", "retry_after_ms": wait_ms })),
    )
        .into_response();
    if let Ok(v) = secs.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

/// Per-source limits of the public routes: 30 requests at once per (route, source), refilled
/// at 60 a minute — the one GCRA of the suite. At most `MAX_KEYS` keys; when full, keys whose
/// limit has refilled are dropped, and if none has, new sources share one overflow key (so a
/// flood of sources cannot grow the table).
#[derive(Default)]
struct PublicLimiter {
    tats: Mutex<HashMap<(&'static str, Source), u64>>,
}

const PUBLIC_RATE: Rate = Rate {
    burst: 30,
    per_period: 60,
    period_ms: 60_000,
};

const MAX_KEYS: usize = 100_000;

impl PublicLimiter {
    fn admit(&self, path: &'static str, source: Source, now_ms: u64) -> Result<(), u64> {
        let now = now_ms.saturating_mul(1000);
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = (path, source);
        if !tats.contains_key(&key) && tats.len() >= MAX_KEYS {
            tats.retain(|_, tat| *tat > now);
            if tats.len() >= MAX_KEYS {
                key = (path, Source::of(std::net::Ipv4Addr::UNSPECIFIED.into()));
            }
        }
        let tat = tats.get(&key).copied().unwrap_or(0);
        match gcra(PUBLIC_RATE, tat, now) {
            Ok(new) => {
                tats.insert(key, new);
                Ok(())
            }
            Err(wait_us) => Err(wait_us.div_ceil(1000)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_at_its_public_limit_waits_and_another_does_not() {
        let l = PublicLimiter::default();
        let a = Source::of("192.0.2.1".parse().unwrap());
        let b = Source::of("192.0.2.2".parse().unwrap());
        for _ in 0..30 {
            l.admit("/x", a, 1_000_000).unwrap();
        }
        let wait = l.admit("/x", a, 1_000_000).unwrap_err();
        assert_eq!(wait, 1000);
        assert!(l.admit("/x", b, 1_000_000).is_ok());
        assert!(l.admit("/y", a, 1_000_000).is_ok(), "limits are per route");
        assert!(
            l.admit("/x", a, 1_001_000).is_ok(),
            "one more a second later"
        );
    }
}

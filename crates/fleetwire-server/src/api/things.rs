//! `/v1/things/…`: parse the request, call [`service::things`](crate::service::things), shape
//! the answer. Every row is `Access::Member`: the one permission check names the caller (a
//! signed-in account, or a trusted gateway's user) before a handler runs.

#![allow(clippy::result_large_err)] // handlers' errors are finished responses

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Extension, Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, any, delete, get, post, put};
use fleetwire_codes::{AccessError, Connected, ThingAccess, Throttled, UnixTime};
use fleetwire_tokio::source::Source;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{Access, Principal, Route};
use crate::app::App;
use crate::service::things::{
    AdminOp, Caller, OpError, ThingView, Things, parse_mode, role_name, valid_user,
};
use crate::store::things::mode_name;

/// The one answer for a code that leads nowhere the caller may go.
const NO_SUCH_THING: &str = "no such thing";

type S = State<Arc<Things>>;

/// The `/v1/things` rows of the route table. With invalid `[things]` settings every route
/// answers 503 with the reason (and the server log says it).
pub(crate) fn routes(app: &Arc<App>) -> Vec<Route> {
    let things = match Things::new(&app.config.things, &app.config.accounts, app.store.clone()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            tracing::error!("things API not available: {e}");
            let reply = move || {
                let e = e.clone();
                async move {
                    error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("things API not available: {e}"),
                    )
                }
            };
            return vec![
                Route::new(
                    Method::GET,
                    "/v1/things",
                    Access::Member,
                    any(reply.clone()),
                ),
                Route::new(
                    Method::GET,
                    "/v1/things/{*rest}",
                    Access::Member,
                    any(reply),
                ),
            ];
        }
    };
    if things.trusts_gateway() {
        tracing::warn!(
            "things.danger_trust_user_header is set: any client can act as any user on /v1/things"
        );
    }
    let row = |method: Method, path: &'static str, handler: MethodRouter<Arc<Things>>| {
        // Member, not Right, even for POST /v1/things: a gateway-named user may hold the right
        // too; the service checks it.
        Route::new(
            method,
            path,
            Access::Member,
            handler.with_state(things.clone()),
        )
    };
    vec![
        row(Method::GET, "/v1/things", get(list)),
        row(Method::POST, "/v1/things", post(create)),
        row(Method::POST, "/v1/things/connect", post(connect)),
        row(Method::GET, "/v1/things/{id}", get(show)),
        row(Method::GET, "/v1/things/{id}/subscribers", get(subscribers)),
        row(Method::PUT, "/v1/things/{id}/mode", put(set_mode)),
        row(
            Method::POST,
            "/v1/things/{id}/requests/{user}/approve",
            post(approve),
        ),
        row(
            Method::POST,
            "/v1/things/{id}/requests/{user}/deny",
            post(deny),
        ),
        row(Method::POST, "/v1/things/{id}/invites", post(invite)),
        row(
            Method::DELETE,
            "/v1/things/{id}/invites/{user}",
            delete(cancel_invite),
        ),
        row(
            Method::DELETE,
            "/v1/things/{id}/members/{user}",
            delete(remove_member),
        ),
        row(Method::POST, "/v1/things/{id}/admins", post(grant_admin)),
        row(
            Method::DELETE,
            "/v1/things/{id}/admins/{user}",
            delete(revoke_admin),
        ),
        row(
            Method::POST,
            "/v1/things/{id}/code/rotate",
            post(rotate_code),
        ),
    ]
}

/// The user a trusted gateway names in `X-Fleetwire-User` (only with
/// `[things] danger_trust_user_header`; the one permission check asks first).
pub(crate) fn gateway_user(headers: &HeaderMap) -> Result<String, Response> {
    let name = headers
        .get("x-fleetwire-user")
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "send X-Fleetwire-User: <user name>",
            )
        })?
        .to_str()
        .map_err(|_| error(StatusCode::BAD_REQUEST, "X-Fleetwire-User is not text"))?;
    valid_user(name.trim())
        .map(str::to_owned)
        .map_err(|e| error(StatusCode::BAD_REQUEST, e))
}

/// A thing as JSON: `{id, name, mode, role?}` and, for administrators and the operator, `code`,
/// `code_expires_at_ms`, `claimed`, `members`, `pending`, `invites`.
pub(crate) fn view_json(v: &ThingView) -> Value {
    let mut out = json!({
        "id": v.id,
        "name": v.name,
        "mode": mode_name(v.mode),
    });
    if let Some(role) = v.role {
        out["role"] = json!(role_name(role));
    }
    if let Some(f) = &v.full {
        out["code"] = json!(f.code.to_string());
        out["code_expires_at_ms"] = json!(f.code_expires_at.map(UnixTime::as_millis));
        out["claimed"] = json!(f.claimed);
        out["members"] = f
            .members
            .iter()
            .map(|m| json!({ "user": m.user, "role": role_name(m.role) }))
            .collect();
        out["pending"] = f
            .pending
            .iter()
            .map(|p| json!({ "user": p.user, "since_ms": p.since.as_millis() }))
            .collect();
        out["invites"] = f
            .invites
            .iter()
            .map(|i| json!({ "user": i.user, "expires_at_ms": i.expires_at.map(UnixTime::as_millis) }))
            .collect();
    }
    out
}

fn now() -> UnixTime {
    UnixTime::from_millis(crate::util::clock::unix_millis())
}

fn caller(p: Principal) -> Caller {
    match p {
        Principal::Account(user) => Caller::Account(user),
        Principal::Gateway(name) => Caller::Gateway(name),
    }
}

type Who = Extension<Principal>;

async fn list(State(t): S, Extension(who): Who) -> Response {
    match t.mine(&caller(who)).await {
        Ok(v) => {
            Json(json!({ "things": v.iter().map(view_json).collect::<Vec<_>>() })).into_response()
        }
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRequest {
    mode: String,
    #[serde(default)]
    name: String,
}

async fn create(State(t): S, Extension(who): Who, body: Bytes) -> Response {
    let req: CreateRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mode = match parse_mode(&req.mode) {
        Ok(m) => m,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match t.create(now(), &caller(who), mode, req.name.clone()).await {
        Ok(made) => {
            tracing::info!(thing = %made.id, by = %made.creator.unwrap_or_default(), "thing created");
            (
                StatusCode::CREATED,
                Json(json!({
                    "id": made.id,
                    "name": req.name,
                    "mode": mode_name(mode),
                    "code": made.code.to_string(),
                })),
            )
                .into_response()
        }
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectRequest {
    code: String,
}

async fn connect(
    State(t): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(who): Who,
    body: Bytes,
) -> Response {
    let req: ConnectRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // A typo costs nothing: the check character catches it before the throttle.
    let code = match t.spec().parse(&req.code) {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("that is not a valid thing code ({e}); check it and try again"),
            );
        }
    };
    let source = Source::of_peer(peer).to_string();
    match t.connect(now(), &source, &caller(who), code).await {
        Ok(joined) => {
            let (status, result, role) = match joined.connected {
                Connected::BecameAdministrator => {
                    (StatusCode::OK, "administrator", Some("administrator"))
                }
                Connected::RequestPending => (StatusCode::ACCEPTED, "pending", None),
                Connected::Joined => (StatusCode::OK, "member", Some("member")),
                Connected::AlreadyMember(role) => {
                    (StatusCode::OK, "already_member", Some(role_name(role)))
                }
            };
            (
                status,
                Json(
                    json!({ "id": joined.id, "name": joined.name, "result": result, "role": role }),
                ),
            )
                .into_response()
        }
        Err(OpError::Throttled(e)) => {
            tracing::info!(%source, "thing code attempt throttled: {e}");
            throttled(e)
        }
        Err(e) => op_error(e),
    }
}

async fn show(State(t): S, Path(id): Path<String>, Extension(who): Who) -> Response {
    match t.show(&caller(who), id).await {
        Ok(v) => Json(view_json(&v)).into_response(),
        Err(e) => op_error(e),
    }
}

async fn subscribers(State(t): S, Path(id): Path<String>, Extension(who): Who) -> Response {
    match t.subscribers(&caller(who), id).await {
        Ok(v) => {
            let d = view_json(&v);
            Json(json!({ "id": v.id, "members": d["members"], "pending": d["pending"], "invites": d["invites"] }))
                .into_response()
        }
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeRequest {
    mode: String,
}

async fn set_mode(
    State(t): S,
    Path(id): Path<String>,
    Extension(who): Who,
    body: Bytes,
) -> Response {
    let mode = match parse::<ModeRequest>(&body)
        .and_then(|m| parse_mode(&m.mode).map_err(|e| error(StatusCode::BAD_REQUEST, e)))
    {
        Ok(m) => m,
        Err(r) => return r,
    };
    reply(t.set_mode(now(), &caller(who), id, mode).await)
}

async fn admin_op(t: &Things, who: Principal, id: String, user: &str, op: AdminOp) -> Response {
    reply(t.admin_op(now(), &caller(who), id, user, op).await)
}

async fn approve(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    Extension(who): Who,
) -> Response {
    admin_op(&t, who, id, &user, ThingAccess::approve).await
}

async fn deny(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    Extension(who): Who,
) -> Response {
    admin_op(&t, who, id, &user, ThingAccess::reject).await
}

async fn cancel_invite(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    Extension(who): Who,
) -> Response {
    admin_op(&t, who, id, &user, ThingAccess::cancel_invite).await
}

async fn remove_member(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    Extension(who): Who,
) -> Response {
    admin_op(&t, who, id, &user, ThingAccess::remove).await
}

async fn revoke_admin(
    State(t): S,
    Path((id, user)): Path<(String, String)>,
    Extension(who): Who,
) -> Response {
    admin_op(&t, who, id, &user, ThingAccess::revoke_admin).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    user: String,
    #[serde(default)]
    expires_in_secs: Option<u64>,
}

async fn grant_admin(
    State(t): S,
    Path(id): Path<String>,
    Extension(who): Who,
    body: Bytes,
) -> Response {
    match parse::<UserRequest>(&body) {
        Ok(req) => admin_op(&t, who, id, &req.user, ThingAccess::grant_admin).await,
        Err(r) => r,
    }
}

async fn invite(State(t): S, Path(id): Path<String>, Extension(who): Who, body: Bytes) -> Response {
    let req: UserRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match t
        .invite(now(), &caller(who), id, &req.user, req.expires_in_secs)
        .await
    {
        Ok(v) => (StatusCode::CREATED, Json(view_json(&v))).into_response(),
        Err(e) => op_error(e),
    }
}

async fn rotate_code(State(t): S, Path(id): Path<String>, Extension(who): Who) -> Response {
    match t.rotate(now(), &caller(who), id).await {
        Ok(code) => Json(json!({ "code": code.to_string() })).into_response(),
        Err(e) => op_error(e),
    }
}

fn reply(r: Result<ThingView, OpError>) -> Response {
    match r {
        Ok(v) => Json(view_json(&v)).into_response(),
        Err(e) => op_error(e),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn throttled(t: Throttled) -> Response {
    let retry_after_ms = match t {
        Throttled::TooManyAttempts { retry_after_ms } | Throttled::Saturated { retry_after_ms } => {
            retry_after_ms
        }
        _ => 3_600_000,
    };
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({
            "error": format!("{NO_SUCH_THING}, or too many wrong codes from this address: {t}"),
            "retry_after_ms": retry_after_ms,
        })),
    )
        .into_response();
    if let Ok(v) = retry_after_ms.div_ceil(1000).max(1).to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// The answer for a failed operation. `NotAdministrator` for a caller with no access at all is
/// "no such thing" (the service says so): a thing id tells nothing to strangers.
fn op_error(e: OpError) -> Response {
    match e {
        OpError::NoSuchThing => error(StatusCode::NOT_FOUND, NO_SUCH_THING),
        e @ OpError::NoSuchUser(_) => error(StatusCode::NOT_FOUND, e.to_string()),
        OpError::Forbidden(why) => error(StatusCode::FORBIDDEN, why),
        OpError::Bad(m) => error(StatusCode::BAD_REQUEST, m),
        OpError::Throttled(t) => throttled(t),
        OpError::Internal(m) => {
            tracing::error!("things: {m}");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; try again",
            )
        }
        OpError::Access(a) => {
            let status = match &a {
                AccessError::NotAdministrator { .. } => StatusCode::FORBIDDEN,
                AccessError::NotMember { .. }
                | AccessError::NoPendingRequest { .. }
                | AccessError::NoInvite { .. }
                | AccessError::NotBlocked { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            };
            error(status, a.to_string())
        }
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

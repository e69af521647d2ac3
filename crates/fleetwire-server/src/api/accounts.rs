//! `/v1/auth/…`: the accounts JSON API (HTTPS only). Every error is JSON `{"error": "…"}` with
//! a reason a person can act on; none tells whether an account exists.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::Method;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{MethodRouter, get, post, put};
use fleetwire_auth::UnixTime;
use fleetwire_auth::audit::AuditEvent;
use fleetwire_auth::captcha::CaptchaChallenge;
use fleetwire_auth::hash::MAX_PASSWORD_BYTES;
use fleetwire_auth::lockout::{DeviceCookie, LockoutKey, Outcome};
use fleetwire_auth::login_flow::{
    Account as FlowAccount, CaptchaAnswer, FactorCheck, Gate, LoginFlow, LoginOutcome,
    LoginRequest as FlowRequest, SecondFactor, Step, Throttled, Verified,
};
use fleetwire_auth::recovery::RecoveryCodes;
use fleetwire_auth::session::{Activity, SessionInfo};
use fleetwire_auth::totp::Totp;
use fleetwire_tokio::source::Source;
use rand_core::OsRng;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::{Access, Route};
use crate::app::App as Ctx;
use crate::service::accounts::UserPolicy as _;
use crate::service::accounts::{
    Accounts, LOGIN_NS, MAX_SESSIONS_PER_USER, REAUTH_NS, canonical_name, mail, now, token_digest,
};
use crate::store::accounts::UserRow;
use crate::store::accounts::{GroupChange, Refused, ResetRow, SignIn};

/// The accounts rows of the route table.
pub(crate) fn routes(ctx: &Arc<Ctx>) -> Vec<Route> {
    let accounts = ctx.accounts.clone();
    let row = |method: Method,
               path: &'static str,
               access: Access,
               handler: MethodRouter<Arc<Accounts>>| {
        Route::new(method, path, access, handler.with_state(accounts.clone()))
    };
    vec![
        row(Method::POST, "/v1/auth/login", Access::Public, post(login)),
        row(
            Method::POST,
            "/v1/auth/logout",
            Access::SignedIn,
            post(logout),
        ),
        row(
            Method::GET,
            "/v1/auth/captcha",
            Access::Public,
            get(captcha),
        ),
        row(Method::GET, "/v1/auth/me", Access::SignedIn, get(me)),
        row(
            Method::PUT,
            "/v1/auth/me/idle-timeout",
            Access::SignedIn,
            put(set_idle),
        ),
        row(
            Method::POST,
            "/v1/auth/reset/request",
            Access::Public,
            post(reset_request),
        ),
        row(
            Method::POST,
            "/v1/auth/reset/complete",
            Access::Public,
            post(reset_complete),
        ),
        row(
            Method::POST,
            "/v1/auth/mfa/enroll",
            Access::SignedIn,
            post(mfa_enroll),
        ),
        row(
            Method::POST,
            "/v1/auth/mfa/confirm",
            Access::SignedIn,
            post(mfa_confirm),
        ),
        row(
            Method::POST,
            "/v1/auth/mfa/disable",
            Access::SignedIn,
            post(mfa_disable),
        ),
        row(
            Method::POST,
            "/v1/auth/mfa/recovery-codes",
            Access::SignedIn,
            post(mfa_recovery_codes),
        ),
        row(
            Method::POST,
            "/v1/auth/password",
            Access::SignedIn,
            post(change_password),
        ),
        row(
            Method::POST,
            "/v1/auth/users/mfa-reset",
            Access::Right(MFA_RESET_RIGHT),
            post(admin_mfa_reset),
        ),
        row(Method::GET, "/v1/auth/check", Access::SignedIn, get(check)),
        row(
            Method::POST,
            "/v1/auth/roles",
            Access::Right("user.roles"),
            post(roles),
        ),
    ]
}

type A = State<Arc<Accounts>>;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn error_with(status: StatusCode, message: &str, extra: &Value) -> Response {
    let mut body = json!({ "error": message });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    (status, Json(body)).into_response()
}

fn retry(status: StatusCode, message: &str, retry_after_ms: u64) -> Response {
    let mut r = error_with(
        status,
        message,
        &json!({ "retry_after_ms": retry_after_ms }),
    );
    if let Ok(v) = retry_after_ms.div_ceil(1000).max(1).to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn internal(e: &str) -> Response {
    tracing::error!("accounts: {e}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; try again",
    )
}

#[allow(clippy::result_large_err)] // a Response is what the handler returns anyway
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

fn challenge_json(c: &CaptchaChallenge) -> Value {
    json!({ "id": c.id, "svg": c.svg, "expires_at_ms": c.expires_at.as_millis() })
}

const GENERIC: &str = "wrong user name or password";
const LOCKED: &str = "too many failed attempts; try again later";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginRequest {
    user: String,
    password: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
    #[serde(default)]
    captcha_id: Option<String>,
    #[serde(default)]
    captcha_answer: Option<String>,
    /// The device cookie from an earlier login (or send it as the `fw_device` cookie).
    #[serde(default)]
    device_cookie: Option<String>,
}

/// The device cookie's name.
const DEVICE_COOKIE: &str = "fw_device";

/// The `fw_device` value of a `Cookie` header, if any.
fn cookie_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == DEVICE_COOKIE)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

/// Why the second factor failed.
enum MfaResult {
    Ok,
    Missing,
    Wrong,
}

#[allow(clippy::too_many_lines)] // one login, in order
async fn login(
    State(a): A,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: LoginRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let name = canonical_name(&req.user);
    if name.is_empty() || name.len() > 254 {
        return error(StatusCode::BAD_REQUEST, "user: 1 to 254 characters");
    }
    if req.password.len() > MAX_PASSWORD_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("password: at most {MAX_PASSWORD_BYTES} bytes"),
        );
    }
    let t = now();
    let origin = peer.ip().to_string();
    let cookie = req
        .device_cookie
        .clone()
        .or_else(|| cookie_header(&headers));
    // The order of the checks is the sans-IO flow's (fleetwire_auth::login_flow, fuzzed): this
    // handler only performs the steps it asks for and reports what happened.
    let mut flow = LoginFlow::new(
        &a.login_config,
        FlowRequest {
            name: name.clone(),
            origin: origin.clone(),
            captcha: match (&req.captcha_id, &req.captcha_answer) {
                (Some(id), Some(answer)) => Some(CaptchaAnswer {
                    id: id.clone(),
                    answer: answer.clone(),
                }),
                _ => None,
            },
            second_factor: match (&req.totp, &req.recovery_code) {
                (Some(code), _) => Some(SecondFactor::Totp(code.clone())),
                (None, Some(code)) => Some(SecondFactor::Recovery(code.clone())),
                (None, None) => None,
            },
            device_cookie: cookie.clone(),
        },
    );
    let mut slot = None;
    let mut user: Option<UserRow> = None;
    let mut ticket = None;
    let mut rehash: Option<String> = None;
    let mut next_captcha = None;
    let mut session = None;
    let outcome = loop {
        let Some(step) = flow.poll_step() else {
            return internal("the login flow ended without an outcome");
        };
        let answered = match step {
            // 1. Throttles per source (an IPv4 address or an IPv6 /64) and global.
            Step::Throttle => {
                let refused = match a.login_throttle(Source::of(peer.ip()).as_bytes(), t).await {
                    Ok(r) => r.err(),
                    Err(e) => return internal(&e),
                };
                flow.throttled(refused.map(|th| Throttled {
                    retry_after_ms: th.retry_after_ms,
                }))
            }
            // 2. A place on the Argon2 pool, before anything is counted.
            Step::ReserveHashSlot => {
                slot = a.pool.try_slot();
                if slot.is_none() {
                    a.engines().busy += 1;
                }
                flow.hash_slot(slot.is_some())
            }
            // 3. The account, if any (the same query whether or not it exists).
            Step::LookupAccount { name } => {
                user = match a.store.accounts().user_by_name(name).await {
                    Ok(u) => u,
                    Err(e) => return internal(&e.to_string()),
                };
                flow.account(user.as_ref().map(|u| FlowAccount {
                    id: u.id.clone(),
                    phc: u.phc.clone(),
                    locked: u.locked,
                    mfa: u.mfa,
                }))
            }
            // 4. The lane's block, the CAPTCHA if its failures call for one, the reservation.
            Step::Gate { lane, captcha } => {
                let key = match lane.device {
                    Some(d) => LockoutKey::device(LOGIN_NS, lane.subject.as_bytes(), d),
                    None => LockoutKey::untrusted(LOGIN_NS, lane.subject.as_bytes()),
                };
                let gate = match a.lane_status(&key, t).await {
                    Err(e) => return internal(&e),
                    Ok(Err(l)) => Gate::Locked { until: l.until },
                    Ok(Ok(failures)) => {
                        let refused = if a.captcha_required(failures) {
                            match &captcha {
                                Some(c) => match a.captcha_solve(&c.id, &c.answer, t).await {
                                    Ok(r) => r.err().map(|e| e.to_string()),
                                    Err(e) => return internal(&e),
                                },
                                None => {
                                    Some("a CAPTCHA is required: type the digits shown".to_owned())
                                }
                            }
                        } else {
                            None
                        };
                        match refused {
                            Some(reason) => Gate::CaptchaRequired { reason },
                            None => match a.lane_begin(&key, t).await {
                                Err(e) => return internal(&e),
                                Ok(Err(l)) => Gate::Locked { until: l.until },
                                Ok(Ok(reserved)) => {
                                    ticket = Some(reserved);
                                    Gate::Open
                                }
                            },
                        }
                    }
                };
                if let Gate::CaptchaRequired { .. } = gate {
                    next_captcha = match a.captcha_issue(t).await {
                        Ok(c) => Some(c),
                        Err(e) => return internal(&e),
                    };
                }
                flow.gate(gate)
            }
            // 5. Exactly one Argon2 verification, account or not.
            Step::Verify { phc } => {
                let Some(reserved) = slot.take() else {
                    return internal("no hashing slot at the verification step");
                };
                let hasher = a.hasher.clone();
                let password = req.password.clone();
                let verified = a
                    .pool
                    .run(reserved, move || {
                        if let Some(phc) = phc {
                            match hasher.verify(&password, &phc) {
                                Ok(v) if v.needs_rehash => {
                                    Some(hasher.hash(&password, &mut OsRng).ok())
                                }
                                Ok(_) => Some(None),
                                Err(_) => None,
                            }
                        } else {
                            // The same Argon2 work as for an account, so timing does not tell.
                            let _ = hasher.verify_unknown_user(&password);
                            None
                        }
                    })
                    .await
                    .flatten();
                flow.verified(match verified {
                    Some(new_hash) => {
                        let again = new_hash.is_some();
                        rehash = new_hash;
                        Verified::Correct { rehash: again }
                    }
                    None => Verified::Wrong,
                })
            }
            // 6. The second factor (single use per time step; recovery codes once).
            Step::CheckSecondFactor { account, factor } => {
                let (totp, recovery) = match &factor {
                    Some(SecondFactor::Totp(c)) => (Some(c.as_str()), None),
                    Some(SecondFactor::Recovery(c)) => (None, Some(c.as_str())),
                    None => (None, None),
                };
                let check = match check_second_factor(&a, &account, totp, recovery, t).await {
                    Ok(MfaResult::Ok) => FactorCheck::Valid,
                    Ok(MfaResult::Missing) => FactorCheck::Missing,
                    Ok(MfaResult::Wrong) => FactorCheck::Invalid,
                    Err(e) => return internal(&e),
                };
                flow.second_factor(check)
            }
            // Every reserved attempt is finished exactly once.
            Step::Finish { outcome } => {
                if let Some(reserved) = ticket.take() {
                    a.lane_finish(reserved, outcome, now()).await;
                }
                flow.finished()
            }
            // 7. Signed in: the session, in memory and as a row (with the rehash, if any).
            Step::CreateSession { account } => {
                let Some(u) = user.clone().filter(|u| u.id == account) else {
                    return internal("the login flow signed in an account it was not given");
                };
                let (token, info, local_new_origin) = {
                    let mut e = a.engines();
                    let t = now();
                    let new_origin = e.origins.observe(&u.id, &origin);
                    e.sessions.set_idle_timeout(&u.id, u.idle_ms(&a.settings));
                    let (token, info) = e.sessions.create(&u.id, t, &mut OsRng);
                    (token, info, new_origin)
                };
                // Several nodes: the account's recent origins are rows, so "new" means new to
                // the fleet.
                let new_origin = match a.new_origin(&u.id, &origin, t).await {
                    Ok(Some(shared)) => shared,
                    Ok(None) => local_new_origin,
                    Err(e) => return internal(&e),
                };
                let stored = a
                    .store
                    .accounts()
                    .sign_in(SignIn {
                        session: crate::store::accounts::SessionRow {
                            digest: token_digest(&token),
                            user_id: u.id.clone(),
                            created_ms: info.created_at.as_millis(),
                            last_active_ms: info.created_at.as_millis(),
                            origin: origin.clone(),
                        },
                        // The session store ended the oldest beyond its per-user cap: so do
                        // the rows, or a restart would bring those sessions back.
                        cap: MAX_SESSIONS_PER_USER,
                        rehash: rehash.take(),
                        now: crate::unix_now(),
                    })
                    .await;
                if let Err(e) = stored {
                    return internal(&e.to_string());
                }
                if new_origin {
                    tracing::warn!(user = %u.id, %origin, "sign-in from a new origin");
                }
                session = Some((token, info, new_origin));
                flow.session_created(new_origin)
            }
            Step::Audit(event) => {
                a.audit(event);
                flow.audited()
            }
            Step::Done(outcome) => break outcome,
        };
        if let Err(misuse) = answered {
            return internal(&misuse.to_string());
        }
    };
    let (user, (token, info, new_origin)) = match outcome {
        LoginOutcome::SignedIn { .. } => match (user, session) {
            (Some(u), Some(s)) => (u, s),
            _ => return internal("signed in without a session"),
        },
        LoginOutcome::Throttled { retry_after_ms } => {
            return retry(
                StatusCode::TOO_MANY_REQUESTS,
                "too many login attempts; slow down",
                retry_after_ms,
            );
        }
        LoginOutcome::Busy => {
            return retry(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is busy; try again shortly",
                1000,
            );
        }
        LoginOutcome::Locked { until } => return locked_response(until, t),
        LoginOutcome::CaptchaRequired { reason } => {
            let Some(next) = next_captcha else {
                return internal("no CAPTCHA to show");
            };
            let c = next.render(&mut OsRng);
            return error_with(
                StatusCode::UNAUTHORIZED,
                &reason,
                &json!({ "captcha_required": true, "captcha": challenge_json(&c) }),
            );
        }
        LoginOutcome::AccountLocked => {
            return error(
                StatusCode::FORBIDDEN,
                "this account is locked; ask an administrator",
            );
        }
        LoginOutcome::SecondFactorRequired => {
            return error_with(
                StatusCode::UNAUTHORIZED,
                "a second factor is required: send totp (or recovery_code) with the password",
                &json!({ "mfa_required": true }),
            );
        }
        LoginOutcome::SecondFactorInvalid => {
            return error(
                StatusCode::UNAUTHORIZED,
                "the one-time code or recovery code is not valid",
            );
        }
        _ => return error(StatusCode::UNAUTHORIZED, GENERIC),
    };
    let known_device = cookie
        .as_deref()
        .and_then(|c| DeviceCookie::verify(&a.device_key, user.id.as_bytes(), c))
        .is_some();
    let device_cookie = DeviceCookie::issue(&a.device_key, user.id.as_bytes(), &mut OsRng);
    let mut response = Json(json!({
        "token": token,
        "user": user.name,
        "groups": user.groups,
        "expires_at_ms": info.expires_at.as_millis(),
        "new_origin": new_origin,
        "device_cookie": device_cookie,
        "known_device": known_device,
    }))
    .into_response();
    let days = a.settings.device_cookie_days;
    if days > 0 {
        let set = format!(
            "{DEVICE_COOKIE}={device_cookie}; Path=/v1/auth/login; Max-Age={}; Secure; HttpOnly; SameSite=Strict",
            u64::from(days) * 86_400
        );
        if let Ok(v) = set.parse() {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    response
}

/// The answer for a blocked lane (the flow audited it).
fn locked_response(until: Option<UnixTime>, t: UnixTime) -> Response {
    match until {
        Some(u) => retry(StatusCode::TOO_MANY_REQUESTS, LOCKED, u.millis_since(t)),
        None => error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts; reset the password or ask an administrator",
        ),
    }
}

/// Checks a TOTP code (single use per time step) or uses a recovery code, under the store lock.
async fn check_second_factor(
    a: &Accounts,
    id: &str,
    totp: Option<&str>,
    recovery: Option<&str>,
    t: UnixTime,
) -> Result<MfaResult, String> {
    let repo = a.store.accounts();
    let row = repo.mfa(id.to_owned()).await.map_err(|e| e.to_string())?;
    let Some(crate::store::accounts::MfaRow {
        secret: Some(secret),
        last_step: last,
        recovery: codes,
        ..
    }) = row
    else {
        return Ok(MfaResult::Wrong);
    };
    if let Some(code) = totp {
        let Some(totp) = a
            .sealer
            .open(id, &secret)
            .and_then(|json| serde_json::from_str::<Totp>(&json).ok())
        else {
            tracing::error!(user = %id, "the stored TOTP secret does not open (totp.key replaced?)");
            return Ok(MfaResult::Wrong);
        };
        return Ok(match totp.verify(code, t, last) {
            // The step is taken atomically: a code works once however many requests (or
            // nodes) it is sent to at the same time.
            Ok(step)
                if repo
                    .use_totp_step(id.to_owned(), step)
                    .await
                    .map_err(|e| e.to_string())? =>
            {
                MfaResult::Ok
            }
            Ok(_) | Err(_) => MfaResult::Wrong,
        });
    }
    if let Some(code) = recovery {
        let Some(before) = codes else {
            return Ok(MfaResult::Wrong);
        };
        let Ok(mut codes) = serde_json::from_str::<RecoveryCodes>(&before) else {
            return Ok(MfaResult::Wrong);
        };
        return Ok(match codes.redeem(code) {
            Ok(_) => {
                let after = serde_json::to_string(&codes).unwrap_or_default();
                // Redeemed once: the swap fails if the codes changed meanwhile.
                if repo
                    .swap_recovery(id.to_owned(), before, after)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    MfaResult::Ok
                } else {
                    MfaResult::Wrong
                }
            }
            Err(_) => MfaResult::Wrong,
        });
    }
    Ok(MfaResult::Missing)
}

/// A signed-in request: the session (checked, idle timer extended unless the request says
/// `X-Fleetwire-Activity: background`) and the current account row.
struct Authed {
    token: String,
    info: SessionInfo,
    user: UserRow,
}

/// The signed-in account behind a request's `Authorization: Bearer` token, checked exactly as
/// the `/v1/auth` routes check it (idle and absolute expiry, locked accounts), for other
/// modules' APIs such as `/v1/things`.
pub(crate) async fn session_user(
    accounts: &Accounts,
    headers: &HeaderMap,
) -> Result<UserRow, Response> {
    authed(accounts, headers).await.map(|a| a.user)
}

async fn authed(a: &Accounts, headers: &HeaderMap) -> Result<Authed, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "sign in first: send Authorization: Bearer <token from /v1/auth/login>",
            )
        })?
        .to_owned();
    let activity = match headers
        .get("x-fleetwire-activity")
        .and_then(|h| h.to_str().ok())
    {
        Some("background") => Activity::Background,
        _ => Activity::User,
    };
    let t = now();
    if a.shared() {
        // Several nodes: the row is the session. A session made on another node is valid here,
        // one ended on another node (sign-out, password change, lock) is over here, and the
        // idle timer is the latest activity any node recorded.
        let digest = token_digest(&token);
        let row = a
            .store
            .accounts()
            .session(digest.clone())
            .await
            .map_err(|e| internal(&e.to_string()))?;
        let mut e = a.engines();
        e.sessions.end(&token);
        let Some(row) = row else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                "session not found; sign in again",
            ));
        };
        if let Some(user) = &row.user {
            e.sessions
                .set_idle_timeout(&user.id, user.idle_ms(&a.settings));
        }
        e.sessions.restore(
            &digest,
            &row.session.user_id,
            UnixTime::from_millis(row.session.created_ms),
            UnixTime::from_millis(row.session.last_active_ms),
        );
    }
    let info = a
        .engines()
        .sessions
        .check(&token, t, activity)
        .map_err(|e| error(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if a.shared() && activity == Activity::User {
        a.store
            .accounts()
            .touch_session(token_digest(&token), t.as_millis())
            .await
            .map_err(|e| internal(&e.to_string()))?;
    }
    let id = info.user.clone();
    let user = a
        .store
        .accounts()
        .user_by_id(id)
        .await
        .map_err(|e| internal(&e.to_string()))?;
    match user {
        Some(user) if !user.locked => Ok(Authed { token, info, user }),
        found => {
            a.engines().sessions.end_all(&info.user);
            Err(if found.is_some() {
                error(
                    StatusCode::FORBIDDEN,
                    "this account is locked; ask an administrator",
                )
            } else {
                error(StatusCode::UNAUTHORIZED, "session not found; sign in again")
            })
        }
    }
}

async fn logout(State(a): A, headers: HeaderMap) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    a.engines().sessions.end(&s.token);
    let digest = token_digest(&s.token);
    if let Err(e) = a.store.accounts().end_session(digest).await {
        return internal(&e.to_string());
    }
    a.audit(AuditEvent::AdminAction {
        actor: s.user.id.clone(),
        action: "logout".into(),
        target: s.user.id,
    });
    Json(json!({ "ok": true })).into_response()
}

/// A challenge for anyone who asks (no sign-in): throttled per source, kept in a bounded
/// table, drawn outside every lock.
async fn captcha(State(a): A, ConnectInfo(peer): ConnectInfo<SocketAddr>) -> Response {
    let t = now();
    let allowed = a
        .captchas()
        .fetch
        .check(CAPTCHA_NS, Source::of(peer.ip()).as_bytes(), t);
    match allowed {
        Ok(()) => match a.captcha_issue(t).await {
            Ok(unrendered) => Json(challenge_json(&unrendered.render(&mut OsRng))).into_response(),
            Err(e) => internal(&e),
        },
        Err(th) => {
            a.captcha_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            retry(
                StatusCode::TOO_MANY_REQUESTS,
                "too many CAPTCHA requests from this address; slow down",
                th.retry_after_ms,
            )
        }
    }
}

/// The throttle namespace of challenge fetches.
const CAPTCHA_NS: &str = "captcha";

async fn me(State(a): A, headers: HeaderMap) -> Response {
    match authed(&a, &headers).await {
        Ok(s) => Json(json!({
            "id": s.user.id,
            "user": s.user.name,
            "email": s.user.email,
            "groups": s.user.groups,
            "mfa": s.user.mfa,
            "created_at": s.user.created_at,
            "idle_timeout_secs": s.user.idle_ms(&a.settings).map(|ms| ms / 1000),
            "session_expires_at_ms": s.info.expires_at.as_millis(),
        }))
        .into_response(),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdleRequest {
    /// Seconds, or `null` for off.
    idle_timeout_secs: Option<u64>,
}

async fn set_idle(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req: IdleRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.idle_timeout_secs == Some(0) {
        return error(
            StatusCode::BAD_REQUEST,
            "idle_timeout_secs: a number of seconds (at least 1), or null for off",
        );
    }
    let stored = req.idle_timeout_secs.unwrap_or(0);
    if let Err(e) = a
        .store
        .accounts()
        .set_idle_timeout(s.user.id.clone(), Some(stored), crate::unix_now())
        .await
    {
        return internal(&e.to_string());
    }
    a.engines().sessions.set_idle_timeout(
        &s.user.id,
        req.idle_timeout_secs.map(|n| n.saturating_mul(1000)),
    );
    Json(json!({ "ok": true, "idle_timeout_secs": req.idle_timeout_secs })).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    user: String,
}

const RESET_SENT: &str = "if an account with that name exists, a reset link is on its way";

async fn reset_request(
    State(a): A,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let req: ResetRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let name = canonical_name(&req.user);
    if name.is_empty() || name.len() > 254 {
        return error(StatusCode::BAD_REQUEST, "user: 1 to 254 characters");
    }
    let t = now();
    if let Err(th) = a
        .engines()
        .throttle
        .check("reset", Source::of(peer.ip()).as_bytes(), t)
    {
        return retry(
            StatusCode::TOO_MANY_REQUESTS,
            "too many reset requests; slow down",
            th.retry_after_ms,
        );
    }
    let lookup = name.clone();
    let user = match a
        .store
        .accounts()
        .user_by_name(canonical_name(&lookup))
        .await
        .map_err(|e| e.to_string())
    {
        Ok(u) => u,
        Err(e) => return internal(&e),
    };
    let who = user
        .as_ref()
        .map_or_else(|| a.pseudonym(&name), |u| u.id.clone());
    a.audit(AuditEvent::ResetRequested { user: who });
    // Same answer whether or not the account exists, and nearly the same work on the request
    // path: a job goes on the mail queue either way (the sender drops the one with no
    // recipient); the request never waits for the mail server.
    let job = match user.filter(|u| !u.locked) {
        Some(user) if user.email.is_some() => {
            // With several nodes the row is the token (any node redeems it); on the embedded
            // store the engine holds it and the row makes it survive a restart.
            let token = if a.shared() {
                fleetwire_auth::reset::new_token(&mut OsRng).0
            } else {
                a.engines()
                    .resets
                    .issue(&user.id, user.password_version, t, &mut OsRng)
            };
            let row = ResetRow {
                digest: token_digest(&token),
                user_id: user.id.clone(),
                expires_ms: t.plus_secs(a.settings.reset_lifetime_secs).as_millis(),
                password_version: user.password_version,
            };
            if a.shared() {
                if let Err(e) = a.store.accounts().issue_reset(row).await {
                    return internal(&e.to_string());
                }
            } else {
                let a2 = a.clone();
                tokio::spawn(async move {
                    let row = a2.store.accounts().issue_reset(row).await;
                    if let Err(e) = row {
                        tracing::error!("reset token row: {e}");
                    }
                });
            }
            mail::Job {
                to: user.email,
                subject: "fleetwire password reset".into(),
                body: format!(
                    "Someone asked to reset the password of {}.\n\nReset it here (the link works once, for {} minutes):\n{}{token}\n\nIf it was not you, ignore this message.\n",
                    user.name,
                    a.settings.reset_lifetime_secs / 60,
                    a.settings.reset_url,
                ),
            }
        }
        _ => mail::Job {
            to: None,
            subject: String::new(),
            body: String::new(),
        },
    };
    a.mailer.queue(job);
    (
        StatusCode::ACCEPTED,
        Json(json!({ "ok": true, "message": RESET_SENT })),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetComplete {
    token: String,
    password: String,
    /// With two-factor sign-in on: a current code, or a recovery code.
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

#[allow(clippy::too_many_lines)] // one reset, in order
async fn reset_complete(State(a): A, body: Bytes) -> Response {
    let req: ResetComplete = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.password.len() > MAX_PASSWORD_BYTES || req.token.len() > 128 {
        return error(StatusCode::BAD_REQUEST, "token or password too long");
    }
    let t = now();
    let id = if a.shared() {
        let row = match a.store.accounts().reset(token_digest(&req.token)).await {
            Ok(Some(row)) => row,
            Ok(None) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    fleetwire_auth::reset::ResetError::Invalid.to_string(),
                );
            }
            Err(e) => return internal(&e.to_string()),
        };
        match fleetwire_auth::reset::judge(UnixTime::from_millis(row.expires_ms), None, t) {
            Ok(()) => row.user_id,
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        }
    } else {
        match a.engines().resets.user_of(&req.token, t) {
            Ok(id) => id.to_owned(),
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        }
    };
    let lookup = id.clone();
    let user = match a
        .store
        .accounts()
        .user_by_id(lookup)
        .await
        .map_err(|e| e.to_string())
    {
        Ok(Some(u)) => u,
        Ok(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "this reset link is invalid or was already used; request a new one",
            );
        }
        Err(e) => return internal(&e),
    };
    // The password is checked before the token is used, so a rejected password can be retried.
    let accepted = match a.policy.accept(&req.password, &user.policy_context()) {
        Ok(p) => p,
        Err(violations) => {
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return error_with(
                StatusCode::BAD_REQUEST,
                "the new password does not meet the rules",
                &json!({ "violations": list }),
            );
        }
    };
    // With two-factor sign-in on, the link alone is not enough: the second factor too (counted
    // in the account's step-up lane). A mailbox thief can neither sign in nor lock the owner
    // out by changing the password; the factor stays on.
    if user.mfa {
        if let Err(r) =
            second_factor_step(&a, &user, req.totp.as_deref(), req.recovery_code.as_deref()).await
        {
            return r;
        }
    }
    let Some(slot) = a.pool.try_slot() else {
        return retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy; try again shortly",
            1000,
        );
    };
    let hasher = a.hasher.clone();
    let phc = match a
        .pool
        .run(slot, move || hasher.hash(accepted.as_str(), &mut OsRng))
        .await
    {
        Some(Ok(phc)) => phc,
        Some(Err(e)) => return internal(&e.to_string()),
        None => return internal("hashing thread gone"),
    };
    // Use the token now: single use, bound to the password version. With several nodes the
    // row is taken out as it is read, so one request on one node gets it.
    let redeemed = if a.shared() {
        match a
            .store
            .accounts()
            .take_reset(token_digest(&req.token))
            .await
        {
            Ok(Some(row)) => fleetwire_auth::reset::judge(
                UnixTime::from_millis(row.expires_ms),
                Some((row.password_version, user.password_version)),
                now(),
            )
            .map(|()| row.user_id),
            Ok(None) => Err(fleetwire_auth::reset::ResetError::Invalid),
            Err(e) => return internal(&e.to_string()),
        }
    } else {
        a.engines()
            .resets
            .redeem(&req.token, user.password_version, now())
    };
    if let Err(e) = redeemed {
        return error(StatusCode::BAD_REQUEST, e.to_string());
    }
    // The new password if the version is unchanged; the account's reset links and sessions
    // end, and an enrolment started in a session (perhaps a thief's) does not survive a reset.
    let updated = a
        .store
        .accounts()
        .reset_password(
            user.id.clone(),
            phc,
            user.password_version,
            crate::unix_now(),
        )
        .await
        .map_err(|e| e.to_string());
    match updated {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the password was changed since this link was sent; request a new one",
            );
        }
        Err(e) => return internal(&e),
    }
    {
        let mut e = a.engines();
        e.sessions.end_all(&user.id);
        e.resets.password_changed(&user.id);
    }
    a.lanes_clear(&user.id).await;
    a.audit(AuditEvent::ResetCompleted {
        user: user.id.clone(),
    });
    Json(json!({ "ok": true, "message": "password changed; sign in with the new password" }))
        .into_response()
}

async fn mfa_enroll(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req: Proof = match parse_proof(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if s.user.mfa {
        return error(
            StatusCode::CONFLICT,
            "two-factor sign-in is already on for this account (turn it off first: POST /v1/auth/mfa/disable)",
        );
    }
    if let Err(r) = step_up(&a, &s.user, &req).await {
        return r;
    }
    let totp = Totp::generate(&mut OsRng);
    let (secret, uri) = (
        totp.secret_base32(),
        totp.provisioning_uri("fleetwire", &s.user.name),
    );
    let id = s.user.id.clone();
    let json = match serde_json::to_string(&totp)
        .map_err(|e| e.to_string())
        .and_then(|plain| a.sealer.seal(&id, &plain))
    {
        Ok(j) => j,
        Err(e) => return internal(&e),
    };
    if let Err(e) = a.store.accounts().set_mfa_pending(id, json).await {
        return internal(&e.to_string());
    }
    Json(json!({
        "secret": secret,
        "otpauth_uri": uri,
        "next": "POST /v1/auth/mfa/confirm with {\"code\": \"<6 digits from the app>\"}",
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmRequest {
    code: String,
}

/// Turns the pending enrolment on if `code` is right: the recovery codes to show once, or why
/// not.
async fn mfa_confirm_step(
    a: &Accounts,
    id: &str,
    code: &str,
    t: UnixTime,
) -> Result<Result<Vec<String>, &'static str>, String> {
    let repo = a.store.accounts();
    let pending = repo
        .mfa(id.to_owned())
        .await
        .map_err(|e| e.to_string())?
        .and_then(|m| m.pending);
    let Some((sealed, totp)) = pending.and_then(|p| {
        let totp = a
            .sealer
            .open(id, &p)
            .and_then(|p| serde_json::from_str::<Totp>(&p).ok())?;
        Some((p, totp))
    }) else {
        return Ok(Err("start with POST /v1/auth/mfa/enroll"));
    };
    let Ok(step) = totp.verify(code, t, None) else {
        return Ok(Err(
            "the code is not valid; check the time on your device and try the next code",
        ));
    };
    let (plain, codes) = RecoveryCodes::generate(10, &mut OsRng);
    let confirmed = repo
        .confirm_mfa(
            id.to_owned(),
            sealed,
            step,
            serde_json::to_string(&codes).unwrap_or_default(),
            crate::unix_now(),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(if confirmed {
        Ok(plain)
    } else {
        Err("start with POST /v1/auth/mfa/enroll")
    })
}

async fn mfa_confirm(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req: ConfirmRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let result = mfa_confirm_step(&a, &s.user.id, &req.code, now()).await;
    match result {
        Ok(Ok(codes)) => {
            if let Err(r) = end_other_sessions(&a, &s.user.id, &s.token).await {
                return r;
            }
            a.audit(AuditEvent::AdminAction {
                actor: s.user.id.clone(),
                action: "mfa_enabled".into(),
                target: s.user.id,
            });
            Json(json!({
                "ok": true,
                "recovery_codes": codes,
                "message": "two-factor sign-in is on; keep the recovery codes somewhere safe, they are shown once",
            }))
            .into_response()
        }
        Ok(Err(why)) => error(StatusCode::BAD_REQUEST, why),
        Err(e) => internal(&e),
    }
}

#[derive(Deserialize)]
struct CheckQuery {
    right: String,
}

async fn check(
    State(a): A,
    headers: HeaderMap,
    q: Result<Query<CheckQuery>, QueryRejection>,
) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing ?right=<dotted right name>",
        );
    };
    match s.user.roles(&a.settings).check(&s.user.id, &q.right) {
        Ok(()) => Json(json!({ "allowed": true, "right": q.right })).into_response(),
        Err(e) => error(StatusCode::FORBIDDEN, e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleRequest {
    user: String,
    group: String,
    grant: bool,
}

async fn roles(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let actor_roles = s.user.roles(&a.settings);
    if let Err(e) = actor_roles.check(&s.user.id, "user.roles") {
        return error(StatusCode::FORBIDDEN, e.to_string());
    }
    let req: RoleRequest = match parse(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !a.settings.groups.contains_key(&req.group) {
        let known: Vec<&String> = a.settings.groups.keys().collect();
        return error(
            StatusCode::BAD_REQUEST,
            format!("no group {:?}; groups: {known:?}", req.group),
        );
    }
    // No escalation: giving or taking a group needs every right it grants.
    if let Err(e) = actor_roles.check_grant(&s.user.id, &req.group) {
        a.audit(AuditEvent::AdminAction {
            actor: s.user.id.clone(),
            action: "role_change_refused".into(),
            target: req.group.clone(),
        });
        return error(StatusCode::FORBIDDEN, e.to_string());
    }
    let changed = a
        .store
        .accounts()
        .set_groups(
            canonical_name(&req.user),
            GroupChange::Grant(req.group.clone(), req.grant),
            crate::unix_now(),
            crate::service::accounts::keep_an_administrator(&a.settings),
        )
        .await
        .map_err(|e| e.to_string());
    match changed {
        Ok(Ok((user, groups))) => {
            let id = user.id;
            a.audit(AuditEvent::RoleChanged {
                actor: s.user.id,
                user: id,
                group: req.group,
                granted: req.grant,
            });
            Json(json!({ "ok": true, "user": canonical_name(&req.user), "groups": groups }))
                .into_response()
        }
        Ok(Err(Refused::NoUser)) => error(StatusCode::NOT_FOUND, "no such user"),
        Ok(Err(Refused::Guard(_))) => error(
            StatusCode::CONFLICT,
            "that is the last administrator (an unlocked account whose groups grant \"*\"): \
             make another account administrator first",
        ),
        Err(e) => internal(&e),
    }
}

// ---------------------------------------------------------------------------------------------
// Step-up: security changes prove the person is at the keyboard now
// ---------------------------------------------------------------------------------------------

/// What a security change carries: the account's password, and its second factor (a current
/// TOTP code or a recovery code) when two-factor sign-in is on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Proof {
    password: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

const PROOF_NEEDED: &str = "this change needs your password again: send {\"password\": \"…\"} \
     (with \"totp\" or \"recovery_code\" when two-factor sign-in is on)";

#[allow(clippy::result_large_err)] // a Response is what the handler returns anyway
fn parse_proof<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("{PROOF_NEEDED} (bad request body: {e})"),
        )
    })
}

/// Step-up re-authentication of the signed-in `user`: the password (one Argon2 verification on
/// the pool), then the second factor if one is on (single use, as at login). Attempts count in
/// the account's own lane (`user-reauth`, the login lockout settings), so a stolen session
/// cannot be used to guess the password; the login lane is untouched. Failures are audited.
async fn step_up(a: &Arc<Accounts>, user: &UserRow, proof: &Proof) -> Result<(), Response> {
    if proof.password.len() > MAX_PASSWORD_BYTES {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("password: at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    let Some(slot) = a.pool.try_slot() else {
        return Err(retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy; try again shortly",
            1000,
        ));
    };
    let key = LockoutKey::untrusted(REAUTH_NS, user.id.as_bytes());
    let t = now();
    let ticket = a
        .lane_begin(&key, t)
        .await
        .map_err(|e| internal(&e))?
        .map_err(|l| reauth_locked(a, user, l.until, t))?;
    let (hasher, phc, password) = (a.hasher.clone(), user.phc.clone(), proof.password.clone());
    let right = a
        .pool
        .run(slot, move || hasher.verify(&password, &phc).is_ok())
        .await
        .unwrap_or(false);
    if !right {
        return Err(reauth_failed(
            a,
            user,
            ticket,
            error(StatusCode::UNAUTHORIZED, "the password is not right"),
        )
        .await);
    }
    if user.mfa {
        match factor(
            a,
            user,
            proof.totp.as_deref(),
            proof.recovery_code.as_deref(),
            t,
        )
        .await
        {
            Ok(MfaResult::Ok) => {}
            Ok(r) => return Err(reauth_failed(a, user, ticket, factor_refused(&r)).await),
            Err(e) => return Err(internal(&e)),
        }
    }
    a.lane_finish(ticket, Outcome::Success, now()).await;
    Ok(())
}

/// The second factor alone, counted in the step-up lane (a password reset by mail).
async fn second_factor_step(
    a: &Arc<Accounts>,
    user: &UserRow,
    totp: Option<&str>,
    recovery: Option<&str>,
) -> Result<(), Response> {
    let key = LockoutKey::untrusted(REAUTH_NS, user.id.as_bytes());
    let t = now();
    let ticket = a
        .lane_begin(&key, t)
        .await
        .map_err(|e| internal(&e))?
        .map_err(|l| reauth_locked(a, user, l.until, t))?;
    match factor(a, user, totp, recovery, t).await {
        Ok(MfaResult::Ok) => {
            a.lane_finish(ticket, Outcome::Success, now()).await;
            Ok(())
        }
        Ok(r) => Err(reauth_failed(a, user, ticket, factor_refused(&r)).await),
        Err(e) => Err(internal(&e)),
    }
}

async fn factor(
    a: &Arc<Accounts>,
    user: &UserRow,
    totp: Option<&str>,
    recovery: Option<&str>,
    t: UnixTime,
) -> Result<MfaResult, String> {
    check_second_factor(a, &user.id, totp, recovery, t).await
}

fn factor_refused(r: &MfaResult) -> Response {
    if matches!(r, MfaResult::Missing) {
        error_with(
            StatusCode::UNAUTHORIZED,
            "two-factor sign-in is on: send totp (or recovery_code) too",
            &json!({ "mfa_required": true }),
        )
    } else {
        error(
            StatusCode::UNAUTHORIZED,
            "the one-time code or recovery code is not valid",
        )
    }
}

async fn reauth_failed(
    a: &Accounts,
    user: &UserRow,
    ticket: crate::service::accounts::LaneTicket,
    response: Response,
) -> Response {
    a.lane_finish(ticket, Outcome::Failure, now()).await;
    a.audit(AuditEvent::AdminAction {
        actor: user.id.clone(),
        action: "reauth_failed".into(),
        target: user.id.clone(),
    });
    response
}

fn reauth_locked(a: &Accounts, user: &UserRow, until: Option<UnixTime>, t: UnixTime) -> Response {
    a.audit(AuditEvent::AdminAction {
        actor: user.id.clone(),
        action: "reauth_locked".into(),
        target: user.id.clone(),
    });
    let message = "too many wrong passwords or codes for this change; try again later";
    match until {
        Some(u) => retry(StatusCode::TOO_MANY_REQUESTS, message, u.millis_since(t)),
        None => error(StatusCode::TOO_MANY_REQUESTS, message),
    }
}

/// Ends every session of `user` but `keep` (the request's own), in memory and in the store.
async fn end_other_sessions(a: &Accounts, user: &str, keep: &str) -> Result<(), Response> {
    a.engines().sessions.end_others(user, keep);
    a.store
        .accounts()
        .end_sessions(user.to_owned(), Some(token_digest(keep)))
        .await
        .map(|_| ())
        .map_err(|e| internal(&e.to_string()))
}

/// Turns two-factor sign-in off (step-up with the password and the factor).
async fn mfa_disable(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req: Proof = match parse_proof(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !s.user.mfa {
        return error(
            StatusCode::CONFLICT,
            "two-factor sign-in is off for this account",
        );
    }
    if let Err(r) = step_up(&a, &s.user, &req).await {
        return r;
    }
    if let Err(e) = a
        .store
        .accounts()
        .clear_mfa(s.user.id.clone(), crate::unix_now())
        .await
    {
        return internal(&e.to_string());
    }
    if let Err(r) = end_other_sessions(&a, &s.user.id, &s.token).await {
        return r;
    }
    a.audit(AuditEvent::AdminAction {
        actor: s.user.id.clone(),
        action: "mfa_disabled".into(),
        target: s.user.id,
    });
    Json(json!({ "ok": true, "message": "two-factor sign-in is off; other sessions were ended" }))
        .into_response()
}

/// New recovery codes; the old ones stop working (step-up with the password and the factor).
async fn mfa_recovery_codes(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req: Proof = match parse_proof(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if !s.user.mfa {
        return error(
            StatusCode::CONFLICT,
            "two-factor sign-in is off: recovery codes come with it (POST /v1/auth/mfa/enroll)",
        );
    }
    if let Err(r) = step_up(&a, &s.user, &req).await {
        return r;
    }
    let (plain, codes) = RecoveryCodes::generate(10, &mut OsRng);
    let Ok(json) = serde_json::to_string(&codes) else {
        return internal("recovery codes do not serialize");
    };
    if let Err(e) = a
        .store
        .accounts()
        .set_recovery(s.user.id.clone(), json, crate::unix_now())
        .await
    {
        return internal(&e.to_string());
    }
    if let Err(r) = end_other_sessions(&a, &s.user.id, &s.token).await {
        return r;
    }
    a.audit(AuditEvent::AdminAction {
        actor: s.user.id.clone(),
        action: "recovery_codes_regenerated".into(),
        target: s.user.id,
    });
    Json(json!({
        "ok": true,
        "recovery_codes": plain,
        "message": "new recovery codes; the old ones no longer work. They are shown once.",
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    /// The current password.
    password: String,
    new_password: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

/// A new password (step-up with the current one and the factor); other sessions and reset
/// links end.
async fn change_password(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req: PasswordChange = match parse_proof(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if req.new_password.len() > MAX_PASSWORD_BYTES {
        return error(
            StatusCode::BAD_REQUEST,
            format!("new_password: at most {MAX_PASSWORD_BYTES} bytes"),
        );
    }
    let accepted = match a.policy.accept(&req.new_password, &s.user.policy_context()) {
        Ok(p) => p,
        Err(violations) => {
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            return error_with(
                StatusCode::BAD_REQUEST,
                "the new password does not meet the rules",
                &json!({ "violations": list }),
            );
        }
    };
    let proof = Proof {
        password: req.password,
        totp: req.totp,
        recovery_code: req.recovery_code,
    };
    if let Err(r) = step_up(&a, &s.user, &proof).await {
        return r;
    }
    let Some(slot) = a.pool.try_slot() else {
        return retry(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is busy; try again shortly",
            1000,
        );
    };
    let hasher = a.hasher.clone();
    let phc = match a
        .pool
        .run(slot, move || hasher.hash(accepted.as_str(), &mut OsRng))
        .await
    {
        Some(Ok(phc)) => phc,
        Some(Err(e)) => return internal(&e.to_string()),
        None => return internal("hashing thread gone"),
    };
    let updated = a
        .store
        .accounts()
        .set_password(
            s.user.id.clone(),
            phc,
            s.user.password_version,
            crate::unix_now(),
        )
        .await
        .map_err(|e| e.to_string());
    match updated {
        Ok(true) => {}
        Ok(false) => {
            return error(
                StatusCode::CONFLICT,
                "the password was changed meanwhile; sign in again",
            );
        }
        Err(e) => return internal(&e),
    }
    a.engines().resets.password_changed(&s.user.id);
    if let Err(r) = end_other_sessions(&a, &s.user.id, &s.token).await {
        return r;
    }
    a.audit(AuditEvent::AdminAction {
        actor: s.user.id.clone(),
        action: "password_changed".into(),
        target: s.user.id,
    });
    Json(json!({ "ok": true, "message": "password changed; other sessions were ended" }))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MfaResetRequest {
    /// The account to reset (name or e-mail).
    user: String,
    /// The administrator's own password (step-up), and factor if theirs is on.
    password: String,
    #[serde(default)]
    totp: Option<String>,
    #[serde(default)]
    recovery_code: Option<String>,
}

/// The right an administrator's MFA reset needs.
pub(super) const MFA_RESET_RIGHT: &str = "user.mfa.reset";

/// An administrator turns another account's two-factor sign-in off (the owner lost the device
/// and the codes, or a thief enrolled their own): needs `user.mfa.reset`, every right of every
/// group of the target (no acting on a more privileged account), and the administrator's own
/// step-up. Ends all the target's sessions; audited.
async fn admin_mfa_reset(State(a): A, headers: HeaderMap, body: Bytes) -> Response {
    let s = match authed(&a, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let roles = s.user.roles(&a.settings);
    if let Err(e) = roles.check(&s.user.id, MFA_RESET_RIGHT) {
        return error(StatusCode::FORBIDDEN, e.to_string());
    }
    let req: MfaResetRequest = match parse_proof(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let lookup = req.user.clone();
    let target = match a
        .store
        .accounts()
        .user_by_name(canonical_name(&lookup))
        .await
        .map_err(|e| e.to_string())
    {
        Ok(Some(u)) => u,
        Ok(None) => return error(StatusCode::NOT_FOUND, "no such user"),
        Err(e) => return internal(&e),
    };
    if let Some(e) = target
        .groups
        .iter()
        .find_map(|g| roles.check_grant(&s.user.id, g).err())
    {
        return error(StatusCode::FORBIDDEN, e.to_string());
    }
    let proof = Proof {
        password: req.password,
        totp: req.totp,
        recovery_code: req.recovery_code,
    };
    if let Err(r) = step_up(&a, &s.user, &proof).await {
        return r;
    }
    if let Err(e) = a
        .store
        .accounts()
        .reset_mfa(target.id.clone(), crate::unix_now())
        .await
    {
        return internal(&e.to_string());
    }
    a.engines().sessions.end_all(&target.id);
    a.audit(AuditEvent::AdminAction {
        actor: s.user.id,
        action: "mfa_reset".into(),
        target: target.id.clone(),
    });
    Json(json!({
        "ok": true,
        "user": target.name,
        "message": "two-factor sign-in is off for this account and its sessions ended; its owner signs in with the password and enrols again",
    }))
    .into_response()
}

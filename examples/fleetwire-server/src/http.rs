//! The HTTP front: the JSON API over HTTPS, and a plain-HTTP port that serves only what is safe
//! without TLS (signed content) and redirects everything else to HTTPS (W5).
//!
//! Each protocol module adds its routes in [`api`] (HTTPS) or [`plain`] (HTTP) with one line.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::serve::{Ctx, Service};

/// Routes served over HTTPS only.
pub(crate) fn api(ctx: &Arc<Ctx>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .merge(crate::content::routes())
        .with_state(ctx.clone())
        .merge(crate::accounts::api(ctx))
        .merge(crate::things::routes(ctx))
}

/// Routes served over plain HTTP too; anything else redirects to HTTPS on `https_port`.
pub(crate) fn plain(ctx: &Arc<Ctx>, https_port: u16) -> Router {
    Router::new()
        .fallback(move |request: Request| async move { redirect_to_https(https_port, &request) })
        .merge(crate::content::routes())
        .with_state(ctx.clone())
}

pub(crate) async fn start(ctx: &Arc<Ctx>) -> Result<Service, String> {
    let settings = &ctx.config.http;
    let https = TcpListener::bind(settings.https_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.https_listen))?;
    let http = TcpListener::bind(settings.http_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.http_listen))?;
    let https_addr = https.local_addr().map_err(|e| e.to_string())?;
    println!("https api on {https_addr}");
    println!(
        "http on {} (signed content; everything else redirects to https)",
        http.local_addr().map_err(|e| e.to_string())?
    );
    let acceptor = TlsAcceptor::from(ctx.tls.clone());
    let max = settings.max_connections;
    let secure = tokio::spawn(accept_loop(
        https,
        Some(acceptor),
        api(ctx),
        max,
        ctx.shutdown.clone(),
    ));
    let open = tokio::spawn(accept_loop(
        http,
        None,
        plain(ctx, https_addr.port()),
        max,
        ctx.shutdown.clone(),
    ));
    Ok(tokio::spawn(async move {
        let _ = secure.await;
        let _ = open.await;
        Ok(())
    }))
}

async fn status(State(ctx): State<Arc<Ctx>>) -> Json<serde_json::Value> {
    let (online, connections) = ctx
        .sessions
        .get()
        .map_or((0, 0), |h| (h.online().len(), h.connections()));
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "players_online": online,
        "player_connections": connections,
    }))
}

/// A 308 to the same path on the HTTPS port, for the host the client asked for.
fn redirect_to_https(port: u16, request: &Request) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map_or("localhost", |h| {
            h.rsplit_once(':').map_or(h, |(name, _)| name)
        });
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    match format!("https://{host}:{port}{path}").parse::<Uri>() {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location.to_string())],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// Encrypted bytes rustls may queue per HTTPS connection before they are written.
const TLS_SEND_BUFFER: usize = 1 << 20;

/// Accepts connections until shutdown: at most `max` at once, headers within 10 s.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    max: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(max));
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // over the limit: dropped
        };
        // Responses are written whole; do not hold their last segment back (Nagle).
        let _ = tcp.set_nodelay(true);
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let service = TowerToHyperService::new(app.layer(axum::Extension(ConnectInfo(peer))));
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .keep_alive(true);
                b
            };
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(mut stream)) => {
                            // Let one write encrypt up to 1 MiB of a large response (chunk
                            // ranges) and hand it to the socket in one call, instead of 64 KiB.
                            stream.get_mut().1.set_buffer_limit(Some(TLS_SEND_BUFFER));
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        _ => return,
                    }
                }
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!(%peer, "http connection ended: {e}");
            }
            drop(permit);
        });
    }
}

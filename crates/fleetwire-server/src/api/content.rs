//! The content routes (a player's signed requests, on HTTPS and plain HTTP): parse the request,
//! ask [`ContentService`], answer. What the routes do is in `service::content`.
//!
//! - `GET /v1/content`: what the player should hold (JSON).
//! - `GET /v1/content/{id}/manifest`: the signed manifest.
//! - `GET /v1/content/{id}/chunks/{index}?count=N`: chunks `index..index+N` (N ≤ 64), streamed
//!   from disk as the client reads (256 KiB pieces, one read ahead, never the whole range), at
//!   most `max_requests_per_player` at once per player on this node.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use fleetwire_session::PlayerId;
use fleetwire_tokio::transfer::{AUTH_HEADER, MAX_CHUNKS_PER_REQUEST};
use fleetwire_transfer::decode_unverified;
use serde::Deserialize;

use super::{Access, Route};
use crate::app::App;
use crate::service::content::{ContentService, Refused, ResponseSlot};
use crate::store::content::Served;

/// The content rows of the route table: a player's signed requests, on both listeners.
pub(crate) fn routes(app: &Arc<App>) -> Vec<Route> {
    let row = |path: &'static str, handler: MethodRouter<Arc<App>>| {
        Route::new(
            Method::GET,
            path,
            Access::Player,
            handler.with_state(app.clone()),
        )
        .also_plain()
    };
    vec![
        row("/v1/content", get(list)),
        row("/v1/content/{id}/manifest", get(manifest)),
        row("/v1/content/{id}/chunks/{index}", get(chunks)),
    ]
}

#[derive(Deserialize)]
struct ChunkQuery {
    count: Option<u32>,
}

/// What a player should hold: every content item published to it or to all players, so that a
/// player told by its heartbeat that its configuration changed knows what to fetch.
async fn list(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let player = match authenticate(&app.content, &method, &headers, &uri).await {
        Ok(player) => player,
        Err(response) => return response,
    };
    match app.content.listing(player).await {
        Ok(items) => {
            let items: Vec<serde_json::Value> = items
                .into_iter()
                .map(|i| {
                    serde_json::json!({
                        "id": i.id,
                        "name": i.name,
                        "sha256": i.sha256,
                        "length": i.length,
                        "added_at": i.added_at,
                    })
                })
                .collect();
            axum::Json(serde_json::json!({ "content": items })).into_response()
        }
        Err(e) => {
            tracing::error!("listing content failed: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn manifest(
    State(app): State<Arc<App>>,
    UrlPath(id): UrlPath<i64>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    match authorize(&app.content, id, &method, &headers, &uri).await {
        Ok((_, item)) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from(item.manifest),
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn chunks(
    State(app): State<Arc<App>>,
    UrlPath((id, index)): UrlPath<(i64, u32)>,
    Query(query): Query<ChunkQuery>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let count = query.count.unwrap_or(1);
    if count == 0 || count > MAX_CHUNKS_PER_REQUEST {
        return (
            StatusCode::BAD_REQUEST,
            format!("count must be 1 to {MAX_CHUNKS_PER_REQUEST}\n"),
        )
            .into_response();
    }
    let content = &app.content;
    let (player, item) = match authorize(content, id, &method, &headers, &uri).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Ok(manifest) = decode_unverified(&item.manifest, u32::MAX) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let chunks = manifest.chunk_count();
    if index >= chunks {
        return (
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("chunk {index} is past the last chunk ({chunks} chunks)\n"),
        )
            .into_response();
    }
    let Some(slot) = content.start_response(player) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            format!(
                "this player already has {} chunk responses in progress\n",
                content.max_responses_per_player()
            ),
        )
            .into_response();
    };
    let end = index.saturating_add(count).min(chunks);
    let offset = manifest.chunk_offset(index);
    let len = manifest.chunk_offset(end).min(manifest.length()) - offset;
    let path = match content.local_file(&item.sha256, item.length).await {
        Ok(path) => path,
        Err(e) => {
            tracing::error!(content = id, "cannot read content: {e}");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let opened = tokio::task::spawn_blocking(move || std::fs::File::open(&path)).await;
    match opened {
        Ok(Ok(file)) => {
            let body = ChunkBody {
                file: Arc::new(file),
                offset,
                remaining: len,
                unsent: len,
                reading: None,
                player,
                content: content.clone(),
                _slot: slot,
            };
            (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                Body::new(body),
            )
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(content = id, "cannot read content: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Checks the player's signature and that item `id` was published to it.
async fn authorize(
    content: &ContentService,
    id: i64,
    method: &Method,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(PlayerId, Served), Response> {
    let player = authenticate(content, method, headers, uri).await?;
    match content.find_for(player, id).await {
        Ok(Some(item)) => Ok((player, item)),
        Ok(None) => Err((
            StatusCode::NOT_FOUND,
            format!("no content {id} for this player\n"),
        )
            .into_response()),
        Err(e) => {
            tracing::error!(content = id, "finding content failed: {e}");
            Err(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// The player whose signed request this is, or the answer that refuses it.
async fn authenticate(
    content: &ContentService,
    method: &Method,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<PlayerId, Response> {
    let header = headers.get(AUTH_HEADER).and_then(|v| v.to_str().ok());
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |p| p.as_str());
    let now = u64::try_from(crate::unix_now()).unwrap_or(0);
    content
        .authenticate(method.as_str(), path, header, now)
        .await
        .map_err(|refused| {
            let status = match &refused {
                Refused::Unsigned
                | Refused::Malformed(_)
                | Refused::NotAPlayer
                | Refused::Replayed => StatusCode::UNAUTHORIZED,
                Refused::NotApproved => StatusCode::FORBIDDEN,
                Refused::TooMany(_) => {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(header::RETRY_AFTER, "10")],
                        format!("{refused}\n"),
                    )
                        .into_response();
                }
                Refused::Store(e) => {
                    tracing::error!("checking a signed request failed: {e}");
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
            };
            (status, format!("{refused}\n")).into_response()
        })
}

/// Bytes a chunk response reads from disk at a time: one response holds the piece hyper is
/// writing and the next one, read ahead so the disk and the socket overlap (plus hyper's 64 KiB
/// and, on HTTPS, rustls's 1 MiB).
const RESPONSE_PIECE: u64 = 256 * 1024;

/// A chunk range streamed from disk as the client reads it: the next piece is read when hyper
/// takes one (it takes one only once its write buffer has room), so a client that stops reading
/// pins at most two pieces here, never the whole range. Bytes count as sent for the player as
/// they are handed to hyper. Holds one of the player's response slots until dropped.
struct ChunkBody {
    file: Arc<std::fs::File>,
    /// Where the next read starts, and what is left to read after it.
    offset: u64,
    remaining: u64,
    /// Bytes not yet handed to hyper (read or not).
    unsent: u64,
    reading: Option<tokio::task::JoinHandle<std::io::Result<Vec<u8>>>>,
    player: PlayerId,
    content: Arc<ContentService>,
    _slot: ResponseSlot,
}

impl ChunkBody {
    /// Starts reading the next piece, if any is left.
    fn read_next(&mut self) {
        if self.remaining == 0 || self.reading.is_some() {
            return;
        }
        let (file, offset) = (self.file.clone(), self.offset);
        let len = self.remaining.min(RESPONSE_PIECE);
        self.offset += len;
        self.remaining -= len;
        self.reading = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt as _;
            // INVARIANT: at most RESPONSE_PIECE (256 KiB), which fits in usize.
            let mut piece = vec![0u8; usize::try_from(len).expect("INVARIANT: a piece fits")];
            file.read_exact_at(&mut piece, offset)?;
            Ok(piece)
        }));
    }
}

impl axum::body::HttpBody for ChunkBody {
    type Data = axum::body::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.unsent == 0 {
            return Poll::Ready(None);
        }
        this.read_next();
        let Some(reading) = this.reading.as_mut() else {
            return Poll::Ready(None);
        };
        let read = std::task::ready!(std::pin::Pin::new(reading).poll(cx));
        this.reading = None;
        match read {
            Ok(Ok(piece)) => {
                let n = piece.len() as u64;
                this.unsent -= n;
                this.content.record_sent(this.player, n);
                // Read the next piece while hyper writes this one.
                this.read_next();
                Poll::Ready(Some(Ok(hyper::body::Frame::data(piece.into()))))
            }
            Ok(Err(e)) => {
                tracing::error!("cannot read content: {e}");
                this.unsent = 0;
                Poll::Ready(Some(Err(e)))
            }
            Err(e) => {
                this.unsent = 0;
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.unsent == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.unsent)
    }
}

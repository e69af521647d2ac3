//! Content for players (S1): `content add FILE --to PLAYER|all` stores the file
//! content-addressed under `data/content/`, builds and signs its manifest with the server's
//! content-signing key (`data/content.key`, created on first use, mode 0600), assigns it, and
//! updates each affected player's configuration hash (a digest over its assigned manifests).
//! The running server polls the store every 2 s and tells connected players a changed hash in
//! the next heartbeat reply; the player then fetches over HTTP(S):
//!
//! - `GET /v1/content/{id}/manifest`: the signed manifest.
//! - `GET /v1/content/{id}/chunks/{index}?count=N`: chunks `index..index+N` (N ≤ 64), streamed
//!   from disk as the client reads (256 KiB pieces, one read ahead, never the whole range), at most
//!   `max_requests_per_player` at once per player.
//!
//! Both are served on HTTPS and on plain HTTP (every chunk is verified by the player against
//! the signed manifest, so plain HTTP cannot alter content). Every request must carry the
//! player's signature ([`fleetwire_tokio::transfer::AUTH_HEADER`]) over its method, path and
//! query, time and nonce; each signed request is accepted once (the nonces are kept until their
//! time leaves the tolerance, [`ReplayCache`]), an unknown player and a bad signature get the
//! same answer, and content is served only to the players it was published to. Bytes sent are
//! recorded per player, for served requests only.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use clap::Subcommand;
use fleetwire_session::{ConfigHash, PlayerId};
use fleetwire_tokio::transfer::{AUTH_HEADER, MAX_CHUNKS_PER_REQUEST, RequestAuth};
use fleetwire_transfer::{ContentSigner, FileKind, ManifestBuilder, decode_unverified};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::api::{Access, Route};
use crate::app::{App as Ctx, Service};
use crate::store::Store;
use crate::unix_now;

/// The content tables.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS content (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    length     INTEGER NOT NULL,
    manifest   BLOB NOT NULL,
    added_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS content_assignments (
    content INTEGER NOT NULL REFERENCES content(id) ON DELETE CASCADE,
    player  BLOB NOT NULL,            -- a player id, or X'' for every player
    PRIMARY KEY (content, player)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS content_bytes_sent (
    player BLOB PRIMARY KEY,
    bytes  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
";

/// `[content]` in fleetwire.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ContentSettings {
    /// Bytes per chunk in new manifests (1 B to 1 MiB).
    pub(crate) chunk_size: u32,
    /// How far a player's request time may be from the server's clock, in seconds. Every
    /// accepted request's nonce is remembered until its time leaves this window (a replay is
    /// refused), so a smaller window also means a smaller replay cache.
    pub(crate) request_time_tolerance_secs: u64,
    /// Signed requests one player may have remembered at once (about 50 bytes each): past it the
    /// player is answered `429` until older ones leave the time window.
    pub(crate) max_signed_requests_per_player: usize,
    /// Chunk responses one player may have in progress at once (over every connection and
    /// both listeners); the next is answered `429`.
    pub(crate) max_requests_per_player: usize,
}

impl Default for ContentSettings {
    fn default() -> Self {
        Self {
            chunk_size: 256 * 1024,
            request_time_tolerance_secs: 300,
            max_signed_requests_per_player: 16_384,
            max_requests_per_player: 8,
        }
    }
}

/// `content add --kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Player configuration: small, urgent, sent first.
    Configuration,
    /// Media and other content.
    Media,
}

#[derive(Subcommand)]
pub(crate) enum ContentCommand {
    /// Publish a file to one player or to all.
    Add {
        /// The file.
        file: PathBuf,
        /// A player id, or `all` (every player, present and future).
        #[arg(long)]
        to: String,
        /// Bytes per chunk (default from fleetwire.toml, 256 KiB).
        #[arg(long)]
        chunk_size: Option<u32>,
        /// What the file is for: configuration is sent before media on a shared connection
        /// (the framed transfer stream).
        #[arg(long, value_enum, default_value_t = Kind::Media)]
        kind: Kind,
    },
    /// List published content, its assignments, and bytes sent per player.
    List,
    /// Print the content-signing public key players must trust (hex).
    Key,
}

/// Runs a `content` command.
pub(crate) fn cli(cmd: ContentCommand, data_dir: &Path, store: &Store) -> Result<(), String> {
    let settings = crate::config::Config::load_or_create(&data_dir.join("fleetwire.toml"))?.content;
    match cmd {
        ContentCommand::Add {
            file,
            to,
            chunk_size,
            kind,
        } => {
            let signer = signer(data_dir)?;
            let target = if to == "all" {
                None
            } else {
                let id: PlayerId = to
                    .parse()
                    .map_err(|e| format!("--to {to}: not a player id or `all` ({e})"))?;
                let known: Option<i64> = store
                    .conn()
                    .query_row(
                        "SELECT 1 FROM players WHERE id = ?1",
                        [&id.as_bytes()[..]],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| e.to_string())?;
                if known.is_none() {
                    return Err(format!("no player {id}"));
                }
                Some(id)
            };
            let (id, length) = add(
                data_dir,
                store,
                &signer,
                &file,
                target,
                chunk_size.unwrap_or(settings.chunk_size),
                match kind {
                    Kind::Configuration => FileKind::Configuration,
                    Kind::Media => FileKind::Media,
                },
            )?;
            println!(
                "content {id}: {} ({length} bytes) published to {to}",
                file.display()
            );
            Ok(())
        }
        ContentCommand::List => {
            let conn = store.conn();
            let mut stmt = conn
                .prepare(
                    "SELECT c.id, c.name, c.length, c.sha256, \
                     (SELECT group_concat(CASE WHEN length(a.player) = 0 THEN 'all' ELSE hex(a.player) END, ' ') \
                      FROM content_assignments a WHERE a.content = c.id) \
                     FROM content c ORDER BY c.id",
                )
                .map_err(|e| e.to_string())?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                })
                .map_err(|e| e.to_string())?;
            println!(
                "{:<6} {:<24} {:>12}  {:<16} TO",
                "ID", "NAME", "BYTES", "SHA-256"
            );
            for row in rows {
                let (id, name, length, sha, to) = row.map_err(|e| e.to_string())?;
                println!(
                    "{id:<6} {name:<24} {length:>12}  {:<16} {}",
                    &sha[..16.min(sha.len())],
                    to.unwrap_or_default().to_lowercase()
                );
            }
            let mut stmt = conn
                .prepare("SELECT hex(player), bytes FROM content_bytes_sent ORDER BY player")
                .map_err(|e| e.to_string())?;
            let sent = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(|e| e.to_string())?;
            for row in sent {
                let (player, bytes) = row.map_err(|e| e.to_string())?;
                println!("sent to {}: {bytes} bytes", player.to_lowercase());
            }
            Ok(())
        }
        ContentCommand::Key => {
            println!("{}", hex::encode(signer(data_dir)?.public_key().0));
            Ok(())
        }
    }
}

/// The content-signing key: `data/content.key` (a 32-byte Ed25519 seed, mode 0600), created on
/// first use.
pub(crate) fn signer(data_dir: &Path) -> Result<ContentSigner, String> {
    let path = data_dir.join("content.key");
    let mut seed = [0u8; 32];
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            f.read_exact(&mut seed)
                .map_err(|e| format!("{}: {e} (expected a 32-byte key)", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            SystemRandom::new()
                .fill(&mut seed)
                .map_err(|_| "no system randomness")?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            options
                .open(&path)
                .and_then(|mut f| f.write_all(&seed).and_then(|()| f.sync_all()))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("created the content-signing key {}", path.display());
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    Ok(ContentSigner::from_seed(&seed))
}

/// Stores, signs and assigns a file; returns its content id and length.
fn add(
    data_dir: &Path,
    store: &Store,
    signer: &ContentSigner,
    file: &Path,
    to: Option<PlayerId>,
    chunk_size: u32,
    kind: FileKind,
) -> Result<(i64, u64), String> {
    let dir = data_dir.join("content");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let id: i64 = store
        .conn()
        .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM content", [], |r| {
            r.get(0)
        })
        .map_err(|e| e.to_string())?;
    let file_id = u64::try_from(id).map_err(|_| "bad content id")?;
    let mut builder = ManifestBuilder::new(kind, file_id, 1, chunk_size)
        .map_err(|e| format!("--chunk-size {chunk_size}: {e}"))?;
    let mut src =
        std::fs::File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let tmp = dir.join(format!(".incoming-{}", std::process::id()));
    let mut copy =
        std::fs::File::create(&tmp).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        if n == 0 {
            break;
        }
        builder.update(&buf[..n]);
        copy.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    }
    copy.sync_all().map_err(|e| e.to_string())?;
    let manifest = builder.finish();
    let sha = hex::encode(manifest.file_digest());
    std::fs::rename(&tmp, dir.join(&sha)).map_err(|e| e.to_string())?;
    let signed = manifest.sign(signer);
    let name = file
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let player: Vec<u8> = to.map(|p| p.as_bytes().to_vec()).unwrap_or_default();
    {
        let mut conn = store.conn();
        let tx = conn.transaction().map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO content (id, name, sha256, length, manifest, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                name,
                sha,
                i64::try_from(manifest.length()).unwrap_or(i64::MAX),
                signed.as_bytes(),
                unix_now()
            ],
        )
        .map_err(|e| e.to_string())?;
        tx.execute(
            "INSERT INTO content_assignments (content, player) VALUES (?1, ?2)",
            params![id, player],
        )
        .map_err(|e| e.to_string())?;
        refresh_config_hashes(&tx, to).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok((id, manifest.length()))
}

/// Recomputes `players.config_hash` for one player, or every player: SHA-256 over
/// `"fleetwire config v1\0"` and, per assigned content in id order, `id:u64be ‖ SHA-256(signed
/// manifest)`.
fn refresh_config_hashes(
    conn: &rusqlite::Connection,
    only: Option<PlayerId>,
) -> rusqlite::Result<()> {
    let players: Vec<Vec<u8>> = if let Some(p) = only {
        vec![p.as_bytes().to_vec()]
    } else {
        let mut stmt = conn.prepare("SELECT id FROM players")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut stmt = conn.prepare(
        "SELECT c.id, c.manifest FROM content c WHERE EXISTS (SELECT 1 FROM content_assignments a \
         WHERE a.content = c.id AND (a.player = ?1 OR length(a.player) = 0)) ORDER BY c.id",
    )?;
    let mut update = conn.prepare("UPDATE players SET config_hash = ?2 WHERE id = ?1")?;
    for player in players {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"fleetwire config v1\0");
        let rows = stmt.query_map([&player], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        for row in rows {
            let (id, manifest) = row?;
            ctx.update(&id.to_be_bytes());
            ctx.update(ring::digest::digest(&ring::digest::SHA256, &manifest).as_ref());
        }
        update.execute(params![player, ctx.finish().as_ref()])?;
    }
    Ok(())
}

/// Bytes of content sent per player since the last flush to the store.
static SENT: Mutex<BTreeMap<PlayerId, u64>> = Mutex::new(BTreeMap::new());

/// Starts the task that pushes changed configuration hashes to connected players and writes
/// bytes sent per player, every 2 s.
pub(crate) async fn start(ctx: &Arc<Ctx>) -> Result<Service, String> {
    // Create the key on first run, so `content key` and the server agree from the start.
    let data_dir = ctx.data_dir.clone();
    tokio::task::spawn_blocking(move || signer(&data_dir).map(|_| ()))
        .await
        .map_err(|e| e.to_string())??;
    let ctx = ctx.clone();
    let mut stop = ctx.shutdown.clone();
    Ok(tokio::spawn(async move {
        let mut told: HashMap<PlayerId, [u8; 32]> = HashMap::new();
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => {
                    flush_sent(&ctx.store).await;
                    return Ok(());
                }
            }
            flush_sent(&ctx.store).await;
            let sessions = &ctx.sessions;
            let online = sessions.online();
            if online.is_empty() {
                continue;
            }
            let store = ctx.store.clone();
            let hashes = tokio::task::spawn_blocking(move || config_hashes(&store, &online)).await;
            let Ok(Ok(hashes)) = hashes else {
                continue;
            };
            for (player, hash) in hashes {
                if told.get(&player) != Some(&hash) {
                    sessions.set_config_hash(&player, Some(ConfigHash(hash)));
                    told.insert(player, hash);
                }
            }
        }
    }))
}

fn config_hashes(store: &Store, ids: &[PlayerId]) -> rusqlite::Result<Vec<(PlayerId, [u8; 32])>> {
    let conn = store.conn();
    let mut stmt = conn.prepare_cached("SELECT config_hash FROM players WHERE id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        let hash: Option<Option<Vec<u8>>> = stmt
            .query_row([&id.as_bytes()[..]], |r| r.get(0))
            .optional()?;
        if let Some(h) = hash
            .flatten()
            .and_then(|h| <[u8; 32]>::try_from(h.as_slice()).ok())
        {
            out.push((*id, h));
        }
    }
    Ok(out)
}

async fn flush_sent(store: &Store) {
    let sent = std::mem::take(&mut *SENT.lock().unwrap_or_else(PoisonError::into_inner));
    if sent.is_empty() {
        return;
    }
    let store = store.clone();
    let result = tokio::task::spawn_blocking(move || -> rusqlite::Result<()> {
        let mut conn = store.conn();
        let tx = conn.transaction()?;
        {
            let mut add = tx.prepare_cached(
                "INSERT INTO content_bytes_sent (player, bytes) VALUES (?1, ?2) \
                 ON CONFLICT(player) DO UPDATE SET bytes = bytes + excluded.bytes",
            )?;
            for (player, bytes) in sent {
                add.execute(params![
                    &player.as_bytes()[..],
                    i64::try_from(bytes).unwrap_or(i64::MAX)
                ])?;
            }
        }
        tx.commit()
    })
    .await;
    if let Ok(Err(e)) = result {
        tracing::error!("recording bytes sent failed: {e}");
    }
}

/// Most signed requests remembered over every player (about 50 bytes each, so about 50 MiB);
/// past it new requests are answered `429` until old ones leave the time window.
const MAX_SIGNED_REQUESTS: usize = 1 << 20;

/// What the content routes of both listeners share: one replay cache, so a request accepted on
/// one listener is refused on the other.
pub(crate) struct Shared {
    tolerance_secs: u64,
    replay: Mutex<ReplayCache>,
    /// A real Ed25519 key no player holds: an unknown player's signature is checked against it,
    /// so unknown players and bad signatures take the same work and get the same answer.
    decoy_verifier: [u8; 32],
    max_responses_per_player: usize,
    /// Chunk responses in progress per player (an entry only while one is).
    responses: Mutex<HashMap<PlayerId, usize>>,
}

impl Shared {
    /// One of `player`'s chunk-response slots, or `None` when it has them all.
    fn start_response(self: &Arc<Self>, player: PlayerId) -> Option<ResponseSlot> {
        let mut responses = self
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = responses.entry(player).or_insert(0);
        if *n >= self.max_responses_per_player {
            return None;
        }
        *n += 1;
        Some(ResponseSlot {
            shared: self.clone(),
            player,
        })
    }
}

/// A chunk response in progress; its slot is released when the body is dropped (finished,
/// failed, or the connection closed).
struct ResponseSlot {
    shared: Arc<Shared>,
    player: PlayerId,
}

impl Drop for ResponseSlot {
    fn drop(&mut self) {
        let mut responses = self
            .shared
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = responses.get_mut(&self.player) {
            *n -= 1;
            if *n == 0 {
                responses.remove(&self.player);
            }
        }
    }
}

impl Shared {
    pub(crate) fn new(settings: &ContentSettings) -> Result<Arc<Self>, String> {
        let mut seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| "no system randomness")?;
        let decoy = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|_| "cannot make the decoy request key")?;
        let decoy_verifier =
            <[u8; 32]>::try_from(ring::signature::KeyPair::public_key(&decoy).as_ref())
                .map_err(|_| "cannot make the decoy request key")?;
        Ok(Arc::new(Self {
            tolerance_secs: settings.request_time_tolerance_secs,
            replay: Mutex::new(ReplayCache::new(
                settings.max_signed_requests_per_player.max(1),
                MAX_SIGNED_REQUESTS,
            )),
            decoy_verifier,
            max_responses_per_player: settings.max_requests_per_player.max(1),
            responses: Mutex::default(),
        }))
    }
}

/// The content routes, for both the HTTPS API and plain HTTP (one `shared` for both).
/// The content rows of the route table: a player's signed requests, on both listeners.
pub(crate) fn routes(ctx: &Arc<Ctx>, shared: &Arc<Shared>) -> Vec<Route> {
    let row = |path: &'static str, handler: MethodRouter<Arc<Ctx>>| {
        Route::new(
            Method::GET,
            path,
            Access::Player,
            handler
                .layer(axum::Extension(shared.clone()))
                .with_state(ctx.clone()),
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

async fn manifest(
    State(ctx): State<Arc<Ctx>>,
    Extension(shared): Extension<Arc<Shared>>,
    UrlPath(id): UrlPath<i64>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let request = Signed {
        method: &method,
        headers: &headers,
        uri: &uri,
    };
    match authorize(&ctx, &shared, id, request).await {
        Ok((_, item)) => octets(item.manifest),
        Err(response) => response,
    }
}

async fn chunks(
    State(ctx): State<Arc<Ctx>>,
    Extension(shared): Extension<Arc<Shared>>,
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
    let request = Signed {
        method: &method,
        headers: &headers,
        uri: &uri,
    };
    let (player, item) = match authorize(&ctx, &shared, id, request).await {
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
    let Some(slot) = shared.start_response(player) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            format!(
                "this player already has {} chunk responses in progress\n",
                shared.max_responses_per_player
            ),
        )
            .into_response();
    };
    let end = index.saturating_add(count).min(chunks);
    let offset = manifest.chunk_offset(index);
    let len = manifest.chunk_offset(end).min(manifest.length()) - offset;
    let path = ctx.data_dir.join("content").join(&item.sha256);
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
                record_sent(this.player, n);
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

fn octets(bytes: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from(bytes),
    )
        .into_response()
}

struct Item {
    manifest: Vec<u8>,
    sha256: String,
}

/// What a player should hold: every content item published to it or to all players, so that a
/// player told by its heartbeat that its configuration changed knows what to fetch.
async fn list(
    State(ctx): State<Arc<Ctx>>,
    Extension(shared): Extension<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let request = Signed {
        method: &method,
        headers: &headers,
        uri: &uri,
    };
    let player = match authenticate(&ctx, &shared, request).await {
        Ok(player) => player,
        Err(response) => return response,
    };
    let store = ctx.store.clone();
    let rows = tokio::task::spawn_blocking(move || -> rusqlite::Result<Vec<serde_json::Value>> {
        let conn = store.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT c.id, c.name, c.sha256, c.length, c.added_at FROM content c WHERE EXISTS \
             (SELECT 1 FROM content_assignments a WHERE a.content = c.id \
              AND (a.player = ?1 OR length(a.player) = 0)) ORDER BY c.id",
        )?;
        let rows = stmt.query_map([&player.as_bytes()[..]], |r| {
            Ok(serde_json::json!({
                "id": r.get::<_, i64>(0)?,
                "name": r.get::<_, String>(1)?,
                "sha256": r.get::<_, String>(2)?,
                "length": r.get::<_, i64>(3)?,
                "added_at": r.get::<_, i64>(4)?,
            }))
        })?;
        rows.collect()
    })
    .await;
    match rows {
        Ok(Ok(items)) => axum::Json(serde_json::json!({ "content": items })).into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Checks the player's signature and that the content was published to it.
async fn authorize(
    ctx: &Arc<Ctx>,
    shared: &Shared,
    id: i64,
    request: Signed<'_>,
) -> Result<(PlayerId, Item), Response> {
    let player = authenticate(ctx, shared, request).await?;
    let store = ctx.store.clone();
    let found = tokio::task::spawn_blocking(move || -> rusqlite::Result<_> {
        store
            .conn()
            .prepare_cached(
                "SELECT c.manifest, c.sha256 FROM content c WHERE c.id = ?1 AND EXISTS \
                 (SELECT 1 FROM content_assignments a WHERE a.content = c.id \
                  AND (a.player = ?2 OR length(a.player) = 0))",
            )?
            .query_row(params![id, &player.as_bytes()[..]], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .optional()
    })
    .await;
    match found {
        Ok(Ok(Some((manifest, sha256)))) => Ok((player, Item { manifest, sha256 })),
        Ok(Ok(None)) => Err((
            StatusCode::NOT_FOUND,
            format!("no content {id} for this player\n"),
        )
            .into_response()),
        _ => Err(StatusCode::INTERNAL_SERVER_ERROR.into_response()),
    }
}

/// The parts of a request its signature covers.
#[derive(Clone, Copy)]
struct Signed<'a> {
    method: &'a Method,
    headers: &'a HeaderMap,
    uri: &'a Uri,
}

/// The one answer for an unknown player and a bad signature, so that nobody learns which
/// player ids exist.
const NOT_A_PLAYER: &str = "bad request signature or unknown player\n";

/// Checks a player's signed request, in this order: a well-formed header; the signature over
/// method, path and query (against the player's verifier, or a decoy key for an unknown player:
/// the same work and the same answer); the time within the tolerance; an approved player; a
/// nonce not seen before (then remembered until its time leaves the tolerance).
async fn authenticate(
    ctx: &Arc<Ctx>,
    shared: &Shared,
    request: Signed<'_>,
) -> Result<PlayerId, Response> {
    let refuse = |status: StatusCode, why: String| (status, format!("{why}\n")).into_response();
    let Some(value) = request
        .headers
        .get(AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            format!("missing {AUTH_HEADER} header (a player's signed request)"),
        ));
    };
    let auth =
        RequestAuth::parse(value).map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let path = request
        .uri
        .path_and_query()
        .map_or_else(|| request.uri.path(), |p| p.as_str());
    let player = PlayerId::from_bytes(auth.player_id);
    let store = ctx.store.clone();
    let found =
        tokio::task::spawn_blocking(move || -> rusqlite::Result<Option<(Vec<u8>, bool)>> {
            store
                .conn()
                .prepare_cached("SELECT verifier, approved FROM players WHERE id = ?1")?
                .query_row([&player.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .await;
    let Ok(Ok(found)) = found else {
        return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
    };
    let known = found.and_then(|(verifier, approved)| {
        <[u8; 32]>::try_from(verifier.as_slice())
            .ok()
            .map(|v| (v, approved))
    });
    let verifier = known.map_or(shared.decoy_verifier, |(v, _)| v);
    let signed = auth.verify_signature(request.method.as_str(), path, &verifier);
    let Some((_, approved)) = known.filter(|_| signed.is_ok()) else {
        return Err((StatusCode::UNAUTHORIZED, NOT_A_PLAYER).into_response());
    };
    let now = u64::try_from(unix_now()).unwrap_or(0);
    auth.check_time(now, shared.tolerance_secs)
        .map_err(|e| refuse(StatusCode::UNAUTHORIZED, e.to_string()))?;
    if !approved {
        return Err(refuse(StatusCode::FORBIDDEN, "player not approved".into()));
    }
    let expires = auth.unix_secs.saturating_add(shared.tolerance_secs);
    let admitted = shared
        .replay
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(player, auth.nonce, expires, now);
    match admitted {
        Ok(()) => Ok(player),
        Err(Refusal::Replayed) => Err(refuse(
            StatusCode::UNAUTHORIZED,
            "this signed request was already used (each is single-use)".into(),
        )),
        Err(Refusal::Full) => Err((
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "10")],
            format!(
                "too many signed requests within {} s: retry later\n",
                shared.tolerance_secs
            ),
        )
            .into_response()),
    }
}

/// Why [`ReplayCache::admit`] refused a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Seen before: a replay.
    Replayed,
    /// The player (or everyone) has as many requests remembered as allowed.
    Full,
}

/// The nonces of accepted signed requests, each kept until its request time leaves the
/// tolerance (after which the header is refused as stale anyway). Bounded per player and in
/// total; expired entries leave from the front of each player's queue (O(1) each).
struct ReplayCache {
    per_player: usize,
    max_total: usize,
    total: usize,
    players: HashMap<PlayerId, Seen>,
}

#[derive(Default)]
struct Seen {
    /// (expiry, nonce) in arrival order.
    order: VecDeque<(u64, [u8; 16])>,
    nonces: HashSet<[u8; 16]>,
}

impl Seen {
    /// Drops entries from the front that expired by `now`; returns how many.
    fn prune(&mut self, now: u64) -> usize {
        let mut dropped = 0;
        while let Some(&(expires, nonce)) = self.order.front() {
            if expires >= now {
                break;
            }
            self.order.pop_front();
            self.nonces.remove(&nonce);
            dropped += 1;
        }
        dropped
    }
}

impl ReplayCache {
    fn new(per_player: usize, max_total: usize) -> Self {
        Self {
            per_player,
            max_total,
            total: 0,
            players: HashMap::new(),
        }
    }

    /// Remembers `nonce` for `player` until `expires` (Unix seconds), or says why not.
    fn admit(
        &mut self,
        player: PlayerId,
        nonce: [u8; 16],
        expires: u64,
        now: u64,
    ) -> Result<(), Refusal> {
        if self.total >= self.max_total {
            self.sweep(now);
        }
        let seen = self.players.entry(player).or_default();
        self.total -= seen.prune(now);
        if seen.nonces.contains(&nonce) {
            return Err(Refusal::Replayed);
        }
        if seen.order.len() >= self.per_player || self.total >= self.max_total {
            return Err(Refusal::Full);
        }
        seen.nonces.insert(nonce);
        seen.order.push_back((expires, nonce));
        self.total += 1;
        Ok(())
    }

    /// Drops every expired entry and every player left with none.
    fn sweep(&mut self, now: u64) {
        let mut dropped = 0;
        self.players.retain(|_, seen| {
            dropped += seen.prune(now);
            !seen.order.is_empty()
        });
        self.total -= dropped;
    }
}

/// Records chunk bytes sent to a player by another path (the framed transfer listener), in the
/// same per-player account as the HTTP(S) chunk endpoints.
pub(crate) fn record_sent(player: PlayerId, bytes: u64) {
    if bytes == 0 {
        return;
    }
    *SENT
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(player)
        .or_default() += bytes;
}

/// What a player should hold, in content id order: each item's signed manifest and the path of
/// its bytes.
pub(crate) fn assigned(
    store: &Store,
    data_dir: &Path,
    player: PlayerId,
) -> rusqlite::Result<Vec<(Vec<u8>, PathBuf)>> {
    let conn = store.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT c.manifest, c.sha256 FROM content c WHERE EXISTS \
         (SELECT 1 FROM content_assignments a WHERE a.content = c.id \
          AND (a.player = ?1 OR length(a.player) = 0)) ORDER BY c.id",
    )?;
    let rows = stmt.query_map([&player.as_bytes()[..]], |r| {
        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
    })?;
    let dir = data_dir.join("content");
    rows.map(|row| row.map(|(manifest, sha)| (manifest, dir.join(sha))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn player(n: u8) -> PlayerId {
        PlayerId::from_bytes([n; 16])
    }

    #[test]
    fn a_nonce_is_accepted_once_until_its_time_leaves_the_window() {
        let mut cache = ReplayCache::new(8, 100);
        assert_eq!(cache.admit(player(1), [1; 16], 1300, 1000), Ok(()));
        assert_eq!(
            cache.admit(player(1), [1; 16], 1300, 1100),
            Err(Refusal::Replayed)
        );
        // Another player may use the same nonce: the key is (player, nonce).
        assert_eq!(cache.admit(player(2), [1; 16], 1300, 1100), Ok(()));
        // Once expired it is forgotten (the header itself is then stale and refused upstream).
        assert_eq!(cache.admit(player(1), [1; 16], 1600, 1301), Ok(()));
        assert_eq!(cache.total, 2);
    }

    #[test]
    fn a_player_at_its_cap_is_refused_and_others_are_not() {
        let mut cache = ReplayCache::new(3, 100);
        for n in 0..3 {
            assert_eq!(cache.admit(player(1), [n; 16], 2000, 1000), Ok(()));
        }
        assert_eq!(
            cache.admit(player(1), [9; 16], 2000, 1000),
            Err(Refusal::Full)
        );
        assert_eq!(cache.admit(player(2), [9; 16], 2000, 1000), Ok(()));
        // Room again once the old ones expire.
        assert_eq!(cache.admit(player(1), [9; 16], 3000, 2001), Ok(()));
    }

    #[test]
    fn the_total_is_bounded_and_expired_players_are_swept() {
        let mut cache = ReplayCache::new(10, 4);
        for n in 0..4 {
            assert_eq!(cache.admit(player(n), [n; 16], 1100, 1000), Ok(()));
        }
        assert_eq!(
            cache.admit(player(9), [9; 16], 1100, 1000),
            Err(Refusal::Full)
        );
        assert_eq!(cache.admit(player(9), [9; 16], 1300, 1200), Ok(()));
        assert_eq!(cache.total, 1);
        assert_eq!(cache.players.len(), 1);
    }
}

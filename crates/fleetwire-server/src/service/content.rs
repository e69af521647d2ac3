//! Content for players (S1): publishing, the players' signed requests, the bytes sent, the
//! configuration-hash notifier, and this node's copy of the files.
//!
//! **Publish** (`content add FILE --to PLAYER|all`): the file is copied content-addressed into
//! `data/content/<sha256>`, its manifest built and signed with the content-signing key (one key
//! for the whole fleet: [`crate::service::keys`], `content.key`), the item assigned, and the
//! configuration hash of every affected player recomputed in the same transaction. With
//! PostgreSQL the file's bytes go into the store first, in pieces, so every node can serve it.
//!
//! **Every node serves every item.** A node serves bytes only from its own disk. With PostgreSQL,
//! a file it does not have yet is fetched from the store into `data/content/`, verified against
//! its SHA-256 (and length) and only then renamed into place; one fetch per file at a time on a
//! node, and each node fetches newly published files in the background so the first request
//! rarely waits. On SQLite the data directory is the only copy.
//!
//! **Signed requests.** Every player request carries the player's signature
//! ([`fleetwire_tokio::transfer::AUTH_HEADER`]) over its method, path and query, time and
//! nonce. Each is accepted once: on SQLite (one node) the nonces are kept in memory
//! ([`ReplayCache`]); with PostgreSQL in the store, so a request accepted by one node is a
//! replay on every other. Either way a nonce is kept until its time leaves the tolerance. An
//! unknown player and a bad signature get the same answer after the same work.
//!
//! **Per node, by design:** the cap on chunk responses in progress per player (it bounds this
//! node's memory), the bytes-sent counters between flushes (added to the store's totals every
//! 2 s with an atomic upsert), and the configuration hashes told to the players connected here
//! (read from the store every 2 s, so a publish on any node reaches them within that period).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fleetwire_session::{ConfigHash, PlayerId, PlayerLookup};
use fleetwire_tokio::session::ServerHandle;
use fleetwire_tokio::transfer::RequestAuth;
use fleetwire_transfer::{ContentSigner, FileKind, ManifestBuilder, PublicKey, SignedManifest};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ContentSettings;
use crate::service::keys::{self, KeyError};
use crate::store::content::{
    Admission, Assignee, BytesSent, Item, NewItem, Nonce, Published, Served,
};
use crate::store::{Store, StoreError};

/// Bytes per row of `content_blobs` (PostgreSQL): what one fetch or upload step holds.
const BLOB_PIECE: usize = 1 << 20;

/// Most signed requests remembered in memory over every player (about 50 bytes each, so about
/// 50 MiB); past it new requests are answered `429` until old ones leave the time window.
const MAX_SIGNED_REQUESTS: usize = 1 << 20;

/// How often the notifier runs: flushes bytes sent, tells changed configuration hashes.
const NOTIFY_PERIOD: Duration = Duration::from_secs(2);

/// Expired nonces leave the store every this many notifier periods (30 s; PostgreSQL). Until
/// then they only take room: an expired nonce neither counts toward a player's cap nor could
/// be replayed (its request time is outside the tolerance).
const PURGE_EVERY_TICKS: u64 = 15;

/// Why content could not be published, listed or served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContentError {
    /// `--to` names no provisioned player.
    #[error("no player {0}")]
    NoSuchPlayer(PlayerId),
    /// The chunk size is out of range.
    #[error("--chunk-size {size}: {why}")]
    ChunkSize { size: u32, why: String },
    /// A file could not be read or written.
    #[error("{path}: {why}")]
    File { path: String, why: String },
    /// The bytes fetched from the store are not the published file.
    #[error("content {sha256} from the store does not match its SHA-256 or length: not served")]
    Corrupt { sha256: String },
    /// This node has not got the file and no other node can give it (SQLite, or missing from
    /// the store).
    #[error("content {0} is not on this node's disk")]
    Missing(String),
    /// The content-signing key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a player's signed request was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// No signature header.
    #[error(
        "missing {} header (a player's signed request)",
        fleetwire_tokio::transfer::AUTH_HEADER
    )]
    Unsigned,
    /// The header is not a signed request, or its time is outside the tolerance.
    #[error("{0}")]
    Malformed(String),
    /// An unknown player or a bad signature (one answer for both).
    #[error("bad request signature or unknown player")]
    NotAPlayer,
    /// The player waits for approval.
    #[error("player not approved")]
    NotApproved,
    /// The request was accepted before (by any node).
    #[error("this signed request was already used (each is single-use)")]
    Replayed,
    /// The player has as many requests remembered as allowed.
    #[error("too many signed requests within {0} s: retry later")]
    TooMany(u64),
    /// The store could not be asked.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An item as `content add` reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PublishedItem {
    pub(crate) id: i64,
    pub(crate) length: u64,
}

/// An item ready to send: its signed manifest and its file on this node's disk.
#[derive(Debug)]
pub(crate) struct LocalItem {
    pub(crate) manifest: Vec<u8>,
    pub(crate) file: PathBuf,
}

/// The players connected to this node, as the notifier sees them.
pub(crate) trait Sessions: Send + Sync + 'static {
    /// Players online on this node.
    fn online(&self) -> Vec<PlayerId>;
    /// Announces `hash` to `player` in its next heartbeat reply.
    fn tell_config_hash(&self, player: &PlayerId, hash: ConfigHash);
}

impl Sessions for ServerHandle {
    fn online(&self) -> Vec<PlayerId> {
        ServerHandle::online(self)
    }

    fn tell_config_hash(&self, player: &PlayerId, hash: ConfigHash) {
        self.set_config_hash(player, Some(hash));
    }
}

/// The content service: one per node (and one per `content` command).
pub(crate) struct ContentService {
    store: Store,
    /// `data/content`: the files, named by their SHA-256.
    dir: PathBuf,
    settings: ContentSettings,
    signer: ContentSigner,
    /// SQLite: the nonces in memory. PostgreSQL: `None`, they are in the store.
    replay: Option<Mutex<ReplayCache>>,
    /// A real Ed25519 key no player holds: an unknown player's signature is checked against it,
    /// so unknown players and bad signatures take the same work and get the same answer.
    decoy_verifier: [u8; 32],
    /// Chunk responses in progress per player on this node (an entry only while one is).
    responses: Mutex<HashMap<PlayerId, usize>>,
    /// Bytes sent per player since the last flush.
    sent: Mutex<BTreeMap<PlayerId, u64>>,
    /// One fetch from the store per file at a time.
    fetching: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ContentService {
    /// The service over `store`, with the fleet's content-signing key (created on first use).
    pub(crate) async fn open(
        store: &Store,
        data_dir: &Path,
        settings: &ContentSettings,
    ) -> Result<Arc<Self>, ContentError> {
        let seed: [u8; 32] = keys::load_or_create(store, data_dir, "content.key").await?;
        let mut decoy_seed = [0u8; 32];
        SystemRandom::new()
            .fill(&mut decoy_seed)
            .map_err(|_| KeyError::NoRandomness("the decoy request key".into()))?;
        let decoy = ContentSigner::from_seed(&decoy_seed).public_key();
        let replay = (!store.content().is_shared()).then(|| {
            Mutex::new(ReplayCache::new(
                settings.max_signed_requests_per_player.max(1),
                MAX_SIGNED_REQUESTS,
            ))
        });
        Ok(Arc::new(Self {
            store: store.clone(),
            dir: data_dir.join("content"),
            settings: settings.clone(),
            signer: ContentSigner::from_seed(&seed),
            replay,
            decoy_verifier: decoy.0,
            responses: Mutex::default(),
            sent: Mutex::default(),
            fetching: tokio::sync::Mutex::default(),
        }))
    }

    /// The content-signing public key players trust.
    pub(crate) fn public_key(&self) -> PublicKey {
        self.signer.public_key()
    }

    /// The chunk size of new manifests unless `content add` names one.
    pub(crate) fn default_chunk_size(&self) -> u32 {
        self.settings.chunk_size
    }

    /// Stores, signs and assigns `file` (see the module docs).
    pub(crate) async fn publish(
        &self,
        file: &Path,
        to: Assignee,
        chunk_size: u32,
        kind: FileKind,
        now: i64,
    ) -> Result<PublishedItem, ContentError> {
        if let Assignee::Player(id) = to {
            if self.store.players().lookup(id).await? == PlayerLookup::Unknown {
                return Err(ContentError::NoSuchPlayer(id));
            }
        }
        let id = self.store.content().reserve_id().await?;
        let file_id = u64::try_from(id)
            .map_err(|_| StoreError::Invalid(format!("content id {id} is negative")))?;
        let builder = ManifestBuilder::new(kind, file_id, 1, chunk_size).map_err(|e| {
            ContentError::ChunkSize {
                size: chunk_size,
                why: e.to_string(),
            }
        })?;
        let (source, dir) = (file.to_owned(), self.dir.clone());
        let manifest = tokio::task::spawn_blocking(move || copy_in(&source, &dir, id, builder))
            .await
            .map_err(|e| StoreError::Unavailable(format!("publish task failed: {e}")))??;
        let sha256 = hex::encode(manifest.file_digest());
        let length = manifest.length();
        if self.store.content().is_shared() {
            self.upload(&sha256, length).await?;
        }
        let signed = manifest.sign(&self.signer);
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        self.store
            .content()
            .publish(NewItem {
                id,
                name,
                sha256,
                length: i64::try_from(length).unwrap_or(i64::MAX),
                manifest: signed.as_bytes().to_vec(),
                added_at: now,
                to,
            })
            .await?;
        Ok(PublishedItem { id, length })
    }

    /// Copies this node's file `sha256` into the store, piece by piece (PostgreSQL).
    async fn upload(&self, sha256: &str, length: u64) -> Result<(), ContentError> {
        let path = self.dir.join(sha256);
        let file = Arc::new(std::fs::File::open(&path).map_err(|e| file_error(&path, &e))?);
        let mut pos = 0u64;
        while pos < length {
            let (file, len) = (file.clone(), (length - pos).min(BLOB_PIECE as u64));
            let piece = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt as _;
                // INVARIANT: at most BLOB_PIECE (1 MiB), which fits in usize.
                let mut piece = vec![0u8; usize::try_from(len).expect("INVARIANT: a piece fits")];
                file.read_exact_at(&mut piece, pos).map(|()| piece)
            })
            .await
            .map_err(|e| StoreError::Unavailable(format!("upload task failed: {e}")))?
            .map_err(|e| file_error(&path, &e))?;
            let at = i64::try_from(pos).unwrap_or(i64::MAX);
            self.store.content().put_piece(sha256, at, &piece).await?;
            pos += len;
        }
        Ok(())
    }

    /// Every item with its assignments, and bytes sent per player (`content list`).
    pub(crate) async fn list(&self) -> Result<(Vec<Published>, Vec<BytesSent>), ContentError> {
        Ok((
            self.store.content().list().await?,
            self.store.content().sent().await?,
        ))
    }

    /// Checks a player's signed request, in this order: a well-formed header; the signature
    /// over method, path and query (against the player's verifier, or the decoy key for an
    /// unknown player: the same work and the same answer); the time within the tolerance; an
    /// approved player; a nonce not seen before on any node (then remembered until its time
    /// leaves the tolerance).
    pub(crate) async fn authenticate(
        &self,
        method: &str,
        path_and_query: &str,
        header: Option<&str>,
        now: u64,
    ) -> Result<PlayerId, Refused> {
        let header = header.ok_or(Refused::Unsigned)?;
        let auth = RequestAuth::parse(header).map_err(|e| Refused::Malformed(e.to_string()))?;
        let player = PlayerId::from_bytes(auth.player_id);
        let known = match self.store.players().lookup(player).await? {
            PlayerLookup::Known {
                verifier, approved, ..
            } => Some((*verifier.as_bytes(), approved)),
            PlayerLookup::Unknown => None,
        };
        let verifier = known.map_or(self.decoy_verifier, |(v, _)| v);
        let signed = auth.verify_signature(method, path_and_query, &verifier);
        let Some((_, approved)) = known.filter(|_| signed.is_ok()) else {
            return Err(Refused::NotAPlayer);
        };
        let tolerance = self.settings.request_time_tolerance_secs;
        auth.check_time(now, tolerance)
            .map_err(|e| Refused::Malformed(e.to_string()))?;
        if !approved {
            return Err(Refused::NotApproved);
        }
        let expires = auth.unix_secs.saturating_add(tolerance);
        let admission = if let Some(cache) = &self.replay {
            cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .admit(player, auth.nonce, expires, now)
        } else {
            let nonce = Nonce {
                player,
                value: auth.nonce,
                expires: i64::try_from(expires).unwrap_or(i64::MAX),
            };
            let cap = i64::try_from(self.settings.max_signed_requests_per_player.max(1))
                .unwrap_or(i64::MAX);
            self.store
                .content()
                .admit_nonce(nonce, i64::try_from(now).unwrap_or(i64::MAX), cap)
                .await?
        };
        match admission {
            Admission::Fresh => Ok(player),
            Admission::Replayed => Err(Refused::Replayed),
            Admission::Full => Err(Refused::TooMany(tolerance)),
        }
    }

    /// What `player` should hold: every item published to it or to all players.
    pub(crate) async fn listing(&self, player: PlayerId) -> Result<Vec<Item>, ContentError> {
        Ok(self.store.content().for_player(player).await?)
    }

    /// Item `id` if it was published to `player`.
    pub(crate) async fn find_for(
        &self,
        player: PlayerId,
        id: i64,
    ) -> Result<Option<Served>, ContentError> {
        Ok(self.store.content().find_for(player, id).await?)
    }

    /// Everything assigned to `player`, in id order, each file on this node's disk (fetched
    /// from the store first where needed). An item whose file cannot be had is left out, with
    /// an error in the log: the others are still sent.
    pub(crate) async fn assigned(&self, player: PlayerId) -> Result<Vec<LocalItem>, ContentError> {
        let mut out = Vec::new();
        for item in self.store.content().served_to(player).await? {
            match self.local_file(&item.sha256, item.length).await {
                Ok(file) => out.push(LocalItem {
                    manifest: item.manifest,
                    file,
                }),
                Err(e) => tracing::error!(content = item.id, "cannot send content: {e}"),
            }
        }
        Ok(out)
    }

    /// Decodes a stored manifest against this fleet's own key (a store edited behind the
    /// server's back sends nothing it did not sign).
    pub(crate) fn verified_manifest(&self, bytes: &[u8]) -> Option<SignedManifest> {
        match SignedManifest::decode(bytes, &[self.public_key()], u32::MAX) {
            Ok(manifest) => Some(manifest),
            Err(e) => {
                tracing::error!("stored manifest does not verify: {e}");
                None
            }
        }
    }

    /// The path of file `sha256` (of `length` bytes) on this node's disk: there already, or
    /// fetched from the store and verified (PostgreSQL).
    pub(crate) async fn local_file(
        &self,
        sha256: &str,
        length: i64,
    ) -> Result<PathBuf, ContentError> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(
                StoreError::Invalid(format!("content name {sha256:?} is not a SHA-256")).into(),
            );
        }
        let path = self.dir.join(sha256);
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(path);
        }
        if !self.store.content().is_shared() {
            return Err(ContentError::Missing(sha256.to_owned()));
        }
        let lock = self
            .fetching
            .lock()
            .await
            .entry(sha256.to_owned())
            .or_default()
            .clone();
        let _one_at_a_time = lock.lock().await;
        let fetched = if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            Ok(()) // another request fetched it meanwhile
        } else {
            self.fetch(sha256, u64::try_from(length).unwrap_or(0), &path)
                .await
        };
        self.fetching.lock().await.remove(sha256);
        fetched.map(|()| path)
    }

    /// Fetches file `sha256` from the store into `path`, verified before it is renamed there.
    async fn fetch(&self, sha256: &str, length: u64, path: &Path) -> Result<(), ContentError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| file_error(&self.dir, &e))?;
        let mut tag = [0u8; 8];
        SystemRandom::new()
            .fill(&mut tag)
            .map_err(|_| KeyError::NoRandomness("a temporary file name".into()))?;
        let tmp = self
            .dir
            .join(format!(".fetch-{sha256}-{}", hex::encode(tag)));
        let result = self.fetch_into(sha256, length, &tmp).await;
        match result {
            Ok(()) => tokio::fs::rename(&tmp, path)
                .await
                .map_err(|e| file_error(path, &e)),
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    async fn fetch_into(&self, sha256: &str, length: u64, tmp: &Path) -> Result<(), ContentError> {
        let mut out = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| file_error(tmp, &e))?;
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut pos = 0u64;
        while pos < length {
            let at = i64::try_from(pos).unwrap_or(i64::MAX);
            let piece = self.store.content().piece(sha256, at).await?;
            let Some(piece) = piece.filter(|p| !p.is_empty()) else {
                return Err(ContentError::Missing(sha256.to_owned()));
            };
            digest.update(&piece);
            out.write_all(&piece)
                .await
                .map_err(|e| file_error(tmp, &e))?;
            pos += piece.len() as u64;
        }
        if pos != length || hex::encode(digest.finish()) != sha256 {
            return Err(ContentError::Corrupt {
                sha256: sha256.to_owned(),
            });
        }
        out.sync_all().await.map_err(|e| file_error(tmp, &e))?;
        tracing::info!(sha256, bytes = length, "content fetched from the store");
        Ok(())
    }

    /// One of `player`'s chunk-response slots on this node, or `None` when it has them all.
    pub(crate) fn start_response(self: &Arc<Self>, player: PlayerId) -> Option<ResponseSlot> {
        let mut responses = self
            .responses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = responses.entry(player).or_insert(0);
        if *n >= self.max_responses_per_player() {
            return None;
        }
        *n += 1;
        Some(ResponseSlot {
            service: self.clone(),
            player,
        })
    }

    /// Chunk responses one player may have in progress on this node.
    pub(crate) fn max_responses_per_player(&self) -> usize {
        self.settings.max_requests_per_player.max(1)
    }

    /// Counts chunk bytes sent to `player` (HTTP(S) or the framed listener); written to the
    /// store by the notifier.
    pub(crate) fn record_sent(&self, player: PlayerId, bytes: u64) {
        if bytes == 0 {
            return;
        }
        *self
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(player)
            .or_default() += bytes;
    }

    /// Adds the bytes counted since the last flush to the store (kept for the next flush if the
    /// store refuses).
    pub(crate) async fn flush_sent(&self) {
        let sent = std::mem::take(&mut *self.sent.lock().unwrap_or_else(PoisonError::into_inner));
        if sent.is_empty() {
            return;
        }
        let rows: Vec<BytesSent> = sent
            .iter()
            .map(|(player, bytes)| BytesSent {
                player: *player,
                bytes: *bytes,
            })
            .collect();
        if let Err(e) = self.store.content().add_sent(rows).await {
            tracing::error!("recording bytes sent failed: {e}");
            let mut pending = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
            for (player, bytes) in sent {
                *pending.entry(player).or_default() += bytes;
            }
        }
    }

    /// The notifier (every 2 s until `shutdown`): writes bytes sent, tells this node's players a
    /// changed configuration hash, forgets expired nonces (PostgreSQL) and fetches newly
    /// published files to this node's disk (PostgreSQL).
    pub(crate) fn start(
        self: &Arc<Self>,
        sessions: impl Sessions,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<Result<(), String>> {
        let service = self.clone();
        let prefetch = self
            .store
            .content()
            .is_shared()
            .then(|| tokio::spawn(service.clone().prefetch()));
        tokio::spawn(async move {
            let mut told: HashMap<PlayerId, [u8; 32]> = HashMap::new();
            let mut tick = tokio::time::interval(NOTIFY_PERIOD);
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                ticks += 1;
                service.flush_sent().await;
                if service.replay.is_none() && ticks % PURGE_EVERY_TICKS == 0 {
                    let now = crate::unix_now();
                    if let Err(e) = service.store.content().purge_nonces(now).await {
                        tracing::error!("forgetting expired request nonces failed: {e}");
                    }
                }
                service.notify(&sessions, &mut told).await;
            }
            if let Some(prefetch) = prefetch {
                prefetch.abort();
            }
            service.flush_sent().await;
            Ok(())
        })
    }

    /// Tells each player online here its stored configuration hash when it changed.
    async fn notify(&self, sessions: &impl Sessions, told: &mut HashMap<PlayerId, [u8; 32]>) {
        let online = sessions.online();
        let here: HashSet<PlayerId> = online.iter().copied().collect();
        told.retain(|player, _| here.contains(player));
        if online.is_empty() {
            return;
        }
        let hashes = match self.store.content().config_hashes(online).await {
            Ok(hashes) => hashes,
            Err(e) => {
                tracing::error!("reading configuration hashes failed: {e}");
                return;
            }
        };
        for row in hashes {
            if told.get(&row.player) != Some(&row.hash) {
                sessions.tell_config_hash(&row.player, ConfigHash(row.hash));
                told.insert(row.player, row.hash);
            }
        }
    }

    /// Fetches every published file this node has not got, as it is published (PostgreSQL).
    async fn prefetch(self: Arc<Self>) {
        let mut done = 0i64;
        let mut tick = tokio::time::interval(NOTIFY_PERIOD);
        loop {
            tick.tick().await;
            let items = match self.store.content().newer_than(done).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::error!("listing new content failed: {e}");
                    continue;
                }
            };
            for item in items {
                if let Err(e) = self.local_file(&item.sha256, item.length).await {
                    // Tried again on the next tick, and on demand.
                    tracing::error!(content = item.id, "cannot fetch content: {e}");
                    break;
                }
                done = item.id;
            }
        }
    }
}

/// A chunk response in progress; its slot is released when dropped (finished, failed, or the
/// connection closed).
pub(crate) struct ResponseSlot {
    service: Arc<ContentService>,
    player: PlayerId,
}

impl Drop for ResponseSlot {
    fn drop(&mut self) {
        let mut responses = self
            .service
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

/// Copies `source` into `dir` under its SHA-256 (through a temporary file, synced), building its
/// manifest on the way.
fn copy_in(
    source: &Path,
    dir: &Path,
    id: i64,
    mut builder: ManifestBuilder,
) -> Result<fleetwire_transfer::Manifest, ContentError> {
    use std::io::{Read as _, Write as _};
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, &e))?;
    let mut src = std::fs::File::open(source).map_err(|e| file_error(source, &e))?;
    let tmp = dir.join(format!(".incoming-{}-{id}", std::process::id()));
    let mut copy = std::fs::File::create(&tmp).map_err(|e| file_error(&tmp, &e))?;
    let mut buf = vec![0u8; 1 << 20];
    let copied = (|| -> Result<(), ContentError> {
        loop {
            let n = src.read(&mut buf).map_err(|e| file_error(source, &e))?;
            if n == 0 {
                break;
            }
            builder.update(&buf[..n]);
            copy.write_all(&buf[..n])
                .map_err(|e| file_error(&tmp, &e))?;
        }
        copy.sync_all().map_err(|e| file_error(&tmp, &e))
    })();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let manifest = builder.finish();
    let path = dir.join(hex::encode(manifest.file_digest()));
    std::fs::rename(&tmp, &path).map_err(|e| file_error(&path, &e))?;
    Ok(manifest)
}

fn file_error(path: &Path, e: &std::io::Error) -> ContentError {
    ContentError::File {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// The nonces of accepted signed requests on a single node (SQLite), each kept until its request
/// time leaves the tolerance (after which the header is refused as stale anyway). Bounded per
/// player and in total; expired entries leave from the front of each player's queue (O(1) each).
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
    fn admit(&mut self, player: PlayerId, nonce: [u8; 16], expires: u64, now: u64) -> Admission {
        if self.total >= self.max_total {
            self.sweep(now);
        }
        let seen = self.players.entry(player).or_default();
        self.total -= seen.prune(now);
        if seen.nonces.contains(&nonce) {
            return Admission::Replayed;
        }
        if seen.order.len() >= self.per_player || self.total >= self.max_total {
            return Admission::Full;
        }
        seen.nonces.insert(nonce);
        seen.order.push_back((expires, nonce));
        self.total += 1;
        Admission::Fresh
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

#[cfg(test)]
mod tests {
    use super::*;

    fn player(n: u8) -> PlayerId {
        PlayerId::from_bytes([n; 16])
    }

    /// A published file reaches a second node's disk through the store (PostgreSQL), verified:
    /// the node that published serves it from its own disk; on SQLite another data directory
    /// has no copy and says so; bytes that do not match the SHA-256 are never served.
    #[tokio::test]
    async fn a_file_published_on_one_node_is_served_by_another_verified() {
        use crate::store::players::NewPlayer;
        use fleetwire_session::PlayerSecret;
        for (kind, store) in crate::store::testing::backends("content_service").await {
            let base = std::env::temp_dir().join(format!(
                "fleetwire-content-service-{kind}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&base);
            let (a_dir, b_dir) = (base.join("a"), base.join("b"));
            std::fs::create_dir_all(&a_dir).unwrap();
            std::fs::create_dir_all(&b_dir).unwrap();
            store
                .players()
                .add(
                    vec![NewPlayer {
                        id: player(1),
                        verifier: PlayerSecret::from_bytes([1; 32]).verifier(),
                        name: "p1".into(),
                        approved: true,
                    }],
                    100,
                )
                .await
                .unwrap();
            let settings = ContentSettings::default();
            let a = ContentService::open(&store, &a_dir, &settings)
                .await
                .unwrap();
            let b = ContentService::open(&store, &b_dir, &settings)
                .await
                .unwrap();
            let file: Vec<u8> = (0..(BLOB_PIECE * 2 + 777))
                .map(|i| u8::try_from(i * 7 % 251).unwrap())
                .collect();
            let src = base.join("menu.bin");
            std::fs::write(&src, &file).unwrap();
            let published = a
                .publish(
                    &src,
                    Assignee::Player(player(1)),
                    65_536,
                    FileKind::Media,
                    1000,
                )
                .await
                .unwrap();
            assert_eq!(published.length, file.len() as u64);
            // Nothing for a player it was not published to.
            assert!(a.assigned(player(2)).await.unwrap().is_empty(), "{kind}");

            let mine = a.assigned(player(1)).await.unwrap();
            assert_eq!(mine.len(), 1, "{kind}");
            assert!(
                mine[0].file.starts_with(&a_dir),
                "{kind}: A serves its own copy"
            );
            assert!(a.verified_manifest(&mine[0].manifest).is_some(), "{kind}");

            let theirs = b.assigned(player(1)).await.unwrap();
            if kind == "sqlite" {
                // One node: another data directory has no copy (and is told so, not served).
                assert!(theirs.is_empty(), "{kind}");
                continue;
            }
            assert_eq!(theirs.len(), 1, "{kind}");
            assert!(
                theirs[0].file.starts_with(&b_dir),
                "{kind}: fetched to B's disk"
            );
            assert_eq!(std::fs::read(&theirs[0].file).unwrap(), file, "{kind}");
            assert!(
                b.verified_manifest(&theirs[0].manifest).is_some(),
                "{kind}: one key"
            );

            // Bytes in the store that do not match the SHA-256 are refused, and nothing is
            // left on disk under the file's name.
            let sha = "cd".repeat(32);
            store.content().put_piece(&sha, 0, b"not it").await.unwrap();
            let refused = b.local_file(&sha, 6).await;
            assert!(
                matches!(refused, Err(ContentError::Corrupt { .. })),
                "{kind}: {refused:?}"
            );
            assert!(!b_dir.join("content").join(&sha).exists());
            // A name that is not a SHA-256 never becomes a path.
            assert!(b.local_file("../fleetwire.toml", 1).await.is_err());
            let _ = std::fs::remove_dir_all(&base);
        }
    }

    #[test]
    fn a_nonce_is_accepted_once_until_its_time_leaves_the_window() {
        let mut cache = ReplayCache::new(8, 100);
        assert_eq!(
            cache.admit(player(1), [1; 16], 1300, 1000),
            Admission::Fresh
        );
        assert_eq!(
            cache.admit(player(1), [1; 16], 1300, 1100),
            Admission::Replayed
        );
        // Another player may use the same nonce: the key is (player, nonce).
        assert_eq!(
            cache.admit(player(2), [1; 16], 1300, 1100),
            Admission::Fresh
        );
        // Once expired it is forgotten (the header itself is then stale and refused upstream).
        assert_eq!(
            cache.admit(player(1), [1; 16], 1600, 1301),
            Admission::Fresh
        );
        assert_eq!(cache.total, 2);
    }

    #[test]
    fn a_player_at_its_cap_is_refused_and_others_are_not() {
        let mut cache = ReplayCache::new(3, 100);
        for n in 0..3 {
            assert_eq!(
                cache.admit(player(1), [n; 16], 2000, 1000),
                Admission::Fresh
            );
        }
        assert_eq!(cache.admit(player(1), [9; 16], 2000, 1000), Admission::Full);
        assert_eq!(
            cache.admit(player(2), [9; 16], 2000, 1000),
            Admission::Fresh
        );
        // Room again once the old ones expire.
        assert_eq!(
            cache.admit(player(1), [9; 16], 3000, 2001),
            Admission::Fresh
        );
    }

    #[test]
    fn the_total_is_bounded_and_expired_players_are_swept() {
        let mut cache = ReplayCache::new(10, 4);
        for n in 0..4 {
            assert_eq!(
                cache.admit(player(n), [n; 16], 1100, 1000),
                Admission::Fresh
            );
        }
        assert_eq!(cache.admit(player(9), [9; 16], 1100, 1000), Admission::Full);
        assert_eq!(
            cache.admit(player(9), [9; 16], 1300, 1200),
            Admission::Fresh
        );
        assert_eq!(cache.total, 1);
        assert_eq!(cache.players.len(), 1);
    }
}

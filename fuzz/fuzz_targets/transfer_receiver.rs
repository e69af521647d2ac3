#![no_main]
//! The receiver machine driven by a program read from the input, with the application around it
//! played by the harness. The harness generates the files and signs their manifests (two
//! versions of one file that share chunks, a second file, and a version signed by an untrusted
//! key), so the program can send real offers and chunks whose bytes match the signed digests
//! (or corrupted ones), store verified chunks late or out of order, answer delta copies with
//! the right or wrong bytes, restart the player from its saved partials (resume) and from a raw
//! partial record, cancel from either side, end the transport (`handle_close`), and let time
//! pass. Completion, resume and delta are reached, not only decoding.
//!
//! Checked: no panic; every verified chunk is the file's bytes at its offset; `Completed` only
//! when the application stored every chunk; every acknowledgement (index, cumulative point,
//! selective ranges) and every accept's `have` covers only chunks the application stored; only
//! trusted manifests are offered to the application; at most one terminal event per transfer
//! and no event for a transfer after it; at most one `Closed`, every offered transfer ended
//! before it and nothing after it; a saved partial decodes again (also after the close).
//!
//! Program: two set-up bytes (chunk size, file length), then operations, one byte each (mod 12)
//! with their operands; see the match below. Past the end of the input every read is 0.
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleetwire_transfer::*;
use libfuzzer_sys::fuzz_target;

#[path = "common/coverage.rs"]
mod coverage;
#[path = "common/ops.rs"]
mod ops;

use ops::Ops;

/// The files of one set-up: `(content, signed manifest)`; the last is signed by an untrusted key.
struct Files {
    files: Vec<(Vec<u8>, SignedManifest)>,
}

const TRUSTED: usize = 3;

fn content(file_id: u64, version: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15 ^ (file_id << 32) ^ version;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn files(chunk_sel: u8, len_sel: u8) -> Option<Arc<Files>> {
    static CACHE: Mutex<Option<HashMap<(u8, u8), Option<Arc<Files>>>>> = Mutex::new(None);
    let key = (chunk_sel % 4, len_sel % 6);
    let mut cache = CACHE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert_with(|| {
            let chunk = [64u32, 100, 256, 512][usize::from(key.0)];
            let len = [1usize, 64, 700, 1500, 2048, 3000][usize::from(key.1)];
            let trusted = ContentSigner::from_seed(&[9; 32]);
            let untrusted = ContentSigner::from_seed(&[10; 32]);
            let v1 = content(1, 1, len);
            // Version 2 changes one byte of chunk 1 and grows: the other chunks are reused.
            let mut v2 = v1.clone();
            if let Some(b) = v2.get_mut(chunk as usize + 1) {
                *b ^= 0xff;
            }
            v2.extend_from_slice(&content(1, 2, 100));
            let other = content(2, 1, 150);
            let mut v3 = v2.clone();
            v3.push(0);
            let mut out = Vec::new();
            for (kind, id, version, data, signer) in [
                (FileKind::Media, 1, 1, v1, &trusted),
                (FileKind::Media, 1, 2, v2, &trusted),
                (FileKind::Configuration, 2, 1, other, &trusted),
                (FileKind::Media, 1, 3, v3, &untrusted),
            ] {
                let m = Manifest::build(kind, id, version, chunk, &data).ok()?.sign(signer);
                out.push((data, m));
            }
            Some(Arc::new(Files { files: out }))
        })
        .clone()
}

/// The application around the receiver.
#[derive(Default)]
struct App {
    /// The chunks on disk, per (file, version).
    disk: HashMap<(u64, u64), BTreeSet<u32>>,
    /// Transfer → (file, version), from the `Offered` events.
    transfers: HashMap<u32, (u64, u64)>,
    /// Transfers that had their terminal event.
    ended: HashSet<u32>,
    /// Verified chunks not yet stored.
    pending: Vec<(u32, u32)>,
    /// Delta copies asked for: (transfer, index, from (file, version), offset, len).
    copies: Vec<(u32, u32, (u64, u64), u64, usize)>,
    /// Complete versions (held across restarts).
    complete: Vec<SignedManifest>,
    closed: u32,
}

fuzz_target!(|data: &[u8]| {
    let mut ops = Ops::new(data);
    let Some(files) = files(ops.u8(), ops.u8()) else { return };
    let by_key: HashMap<(u64, u64), usize> =
        files.files[..TRUSTED].iter().enumerate().map(|(i, (_, m))| ((m.file_id(), m.version()), i)).collect();
    let trusted = vec![ContentSigner::from_seed(&[9; 32]).public_key()];
    let config = Arc::new(ReceiverConfig::new(trusted.clone()));
    #[allow(clippy::disallowed_methods)]
    let mut now = Instant::now();
    let mut r = Receiver::new(config.clone(), now);
    let mut app = App::default();
    let mut msg = Vec::new();
    let mut steps = 0;
    while !ops.is_empty() && steps < 512 {
        steps += 1;
        msg.clear();
        let op = ops.u8() % 12;
        coverage::trace(|| format!("op {op}"));
        match op {
            // The sender offers one of the files (or the untrusted one).
            0 => {
                let (t, window, m) = (ops.u8() % 4, ops.u8(), usize::from(ops.u8()) % files.files.len());
                Message::Offer { transfer: u32::from(t), window: u32::from(window), manifest: files.files[m].1.as_bytes() }.encode(&mut msg);
            }
            // A chunk with a file's real bytes (any file, any index, so mismatches too), or
            // corrupted, truncated or empty.
            1 | 2 => {
                let (t, m, index, seq) = (ops.u8() % 4, usize::from(ops.u8()) % files.files.len(), ops.u8(), ops.u8());
                let (file, manifest) = &files.files[m];
                let index = u32::from(index) % (manifest.manifest().chunk_count() + 1);
                let start = manifest.manifest().chunk_offset(index.min(manifest.manifest().chunk_count())) as usize;
                let end = (start + manifest.manifest().chunk_size() as usize).min(file.len());
                let mut data = file.get(start..end).unwrap_or_default().to_vec();
                if op == 2 {
                    let (how, at) = (ops.u8(), usize::from(ops.u8()));
                    match how % 3 {
                        0 if !data.is_empty() => {
                            let i = at % data.len();
                            data[i] ^= 1;
                        }
                        1 => data.truncate(at % (data.len() + 1)),
                        _ => data.push(how),
                    }
                }
                Message::Chunk { transfer: u32::from(t), index, seq: u64::from(seq), data: &data }.encode(&mut msg);
            }
            // Raw bytes, with a valid checksum appended or not.
            3 => {
                let (crc, raw) = (ops.u8(), ops.blob());
                msg.extend_from_slice(raw);
                if crc & 1 == 1 {
                    let c = crc32c(&msg);
                    msg.extend_from_slice(&c.to_be_bytes());
                }
            }
            4 => Message::Cancel { transfer: u32::from(ops.u8() % 4) }.encode(&mut msg),
            5 => {
                now += Duration::from_millis(u64::from(ops.u16()) * 100);
                r.handle_timeout(now);
            }
            // The application stores some verified chunks, oldest or newest first.
            6 => {
                let (n, newest) = (usize::from(ops.u8() % 8) + 1, ops.u8() & 1 == 1);
                for _ in 0..n.min(app.pending.len()) {
                    let (t, index) = if newest { app.pending.pop().unwrap() } else { app.pending.remove(0) };
                    if let Some(key) = app.transfers.get(&t) {
                        app.disk.entry(*key).or_default().insert(index);
                    }
                    let _ = r.chunk_stored(now, TransferId(t), index);
                }
            }
            // The player restarts: saved partials and complete files go to a new receiver;
            // verified but unstored chunks and unanswered copies are lost.
            7 => {
                let partials: Vec<Vec<u8>> = (0..4).filter_map(|t| r.partial(TransferId(t))).map(|p| p.encode()).collect();
                r = Receiver::new(config.clone(), now);
                for bytes in partials {
                    let p = Partial::decode(&bytes, &trusted, DEFAULT_MAX_CHUNKS).expect("a saved partial decodes");
                    r.add_partial(p);
                }
                for m in &app.complete {
                    r.hold(m.clone());
                }
                app.pending.clear();
                app.copies.clear();
                app.transfers.clear();
                app.ended.clear();
                app.closed = 0;
                coverage::note(|| "restart".into());
            }
            // A partial record from disk as raw bytes (kept only if it claims no chunk the
            // disk lacks: the receiver trusts its own records).
            8 => {
                if let Ok(p) = Partial::decode(ops.blob(), &trusted, DEFAULT_MAX_CHUNKS) {
                    let m = p.manifest();
                    let disk = app.disk.get(&(m.file_id(), m.version()));
                    if (0..p.stored().len()).all(|i| !p.stored().contains(i) || disk.is_some_and(|d| d.contains(&i))) {
                        r.add_partial(p);
                    }
                }
            }
            9 => {
                let _ = r.cancel(now, TransferId(u32::from(ops.u8() % 4)));
            }
            // The transport ends.
            11 => r.handle_close(now),
            // The application answers delta copies: the held bytes, wrong bytes or nothing.
            _ => {
                let how = ops.u8();
                for (t, index, from, offset, len) in std::mem::take(&mut app.copies) {
                    let held = by_key.get(&from).map(|&i| &files.files[i].0);
                    let mut bytes = held.and_then(|f| f.get(offset as usize..offset as usize + len)).unwrap_or_default().to_vec();
                    match how % 3 {
                        0 => {}
                        1 if !bytes.is_empty() => bytes[0] ^= 1,
                        _ => bytes.clear(),
                    }
                    let _ = r.local_chunk(now, TransferId(t), index, &bytes);
                }
            }
        }
        if !msg.is_empty() {
            if let Err(e) = r.handle_input(now, &msg) {
                coverage::note(|| format!("input-err:{}", coverage::kind(&e)));
            }
        }
        drain(&mut r, &mut app, &files, &by_key);
    }
});

fn drain(r: &mut Receiver, app: &mut App, files: &Files, by_key: &HashMap<(u64, u64), usize>) {
    while let Some(ev) = r.poll_event() {
        coverage::trace(|| format!("event {ev:?}").chars().take(200).collect());
        assert_eq!(app.closed, 0, "event after Closed: {ev:?}");
        coverage::note(|| match &ev {
            ReceiverEvent::Closed { reason } => format!("closed:{}", coverage::kind(reason)),
            ReceiverEvent::Failed { reason, .. } => format!("failed:{}", coverage::kind(reason)),
            ReceiverEvent::Offered { resumed, .. } if *resumed > 0 => "event:Offered+resumed".into(),
            e => format!("event:{}", coverage::kind(e)),
        });
        let live = |app: &App, t: TransferId| {
            assert!(!app.ended.contains(&t.0), "event for transfer {} after its end", t.0);
        };
        match ev {
            ReceiverEvent::Offered { transfer, manifest, .. } => {
                let key = (manifest.file_id(), manifest.version());
                let i = *by_key.get(&key).expect("an untrusted manifest was offered");
                assert_eq!(files.files[i].1, manifest);
                app.transfers.insert(transfer.0, key);
                app.ended.remove(&transfer.0);
            }
            ReceiverEvent::ChunkVerified { transfer, index, offset, data } => {
                live(app, transfer);
                let key = app.transfers[&transfer.0];
                let file = &files.files[by_key[&key]].0;
                assert_eq!(file.get(offset as usize..offset as usize + data.len()), Some(&data[..]), "unverified data accepted");
                app.pending.push((transfer.0, index));
            }
            ReceiverEvent::CopyChunk { transfer, index, from_file_id, from_version, from_offset, len } => {
                live(app, transfer);
                app.copies.push((transfer.0, index, (from_file_id, from_version), from_offset, len));
            }
            ReceiverEvent::ChunkRejected { transfer, .. } => live(app, transfer),
            ReceiverEvent::Completed { transfer, file_id, version } => {
                live(app, transfer);
                let key = (file_id, version);
                assert_eq!(app.transfers.get(&transfer.0), Some(&key));
                let m = &files.files[by_key[&key]].1;
                let disk = app.disk.get(&key);
                assert!(
                    (0..m.manifest().chunk_count()).all(|i| disk.is_some_and(|d| d.contains(&i))),
                    "completed before every chunk was stored"
                );
                if !app.complete.contains(m) {
                    app.complete.push(m.clone());
                }
                app.ended.insert(transfer.0);
            }
            ReceiverEvent::Failed { transfer, reason } => {
                // A refused offer has no Offered event before it (and may reuse the id of an
                // ended transfer); the peer's cancel ends a transfer the receiver had. (The
                // application's own `cancel` of a completed transfer still reports `Failed`:
                // caller-driven, not checked here.)
                if reason == TransferError::PeerCancelled {
                    live(app, transfer);
                }
                app.ended.insert(transfer.0);
            }
            ReceiverEvent::Closed { .. } => {
                for t in app.transfers.keys() {
                    assert!(app.ended.contains(t), "Closed before transfer {t} ended");
                }
                app.closed += 1;
            }
            _ => {}
        }
    }
    let mut buf = Vec::new();
    loop {
        buf.clear(); // poll_transmit appends
        if r.poll_transmit(&mut buf).is_none() {
            break;
        }
        let m = Message::decode(&buf).expect("the receiver sent an undecodable message");
        coverage::trace(|| format!("sent {m:?}"));
        coverage::note(|| format!("sent:{}", coverage::kind(&m)));
        let stored = |t: u32, i: u32| {
            app.transfers.get(&t).and_then(|k| app.disk.get(k)).is_some_and(|d| d.contains(&i))
        };
        match m {
            Message::Ack { transfer, index, cumulative, sack, .. } => {
                assert!(stored(transfer, index), "ack of chunk {index} that was not stored");
                assert!((0..cumulative).all(|i| stored(transfer, i)), "cumulative ack {cumulative} covers unstored chunks");
                assert!(sack.iter().all(|i| stored(transfer, i)), "selective ack covers unstored chunks");
            }
            Message::Accept { transfer, have, .. } => {
                assert!(have.iter().all(|i| stored(transfer, i)), "accept claims unstored chunks");
            }
            _ => {}
        }
    }
}

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

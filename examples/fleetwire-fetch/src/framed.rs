//! `tcps://`: the framed transfer stream. Log in as the player, take the offered item named by
//! `--content` into `--out` (resuming `OUT.part`), decline the others.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use fleetwire_session::{ClientConfig, PlayerId, PlayerSecret};
use fleetwire_tokio::framed::{connect_player, receive_framed_many};
use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{PartFile, Progress, ReceiveOptions};
use fleetwire_transfer::{PublicKey, ReceiverConfig};
use indicatif::{ProgressBar, ProgressStyle};
use rustls::pki_types::ServerName;

use crate::Args;

/// One machine-readable progress line.
pub(crate) fn print_progress(p: &Progress) {
    println!(
        "progress {} {} {} {}",
        p.stored_bytes, p.total_bytes, p.received_bytes, p.resumed_bytes
    );
}

pub(crate) async fn run(args: &Args, addr: SocketAddr) -> Result<(), String> {
    let fp = args
        .fingerprint
        .as_deref()
        .and_then(tls::parse_fingerprint)
        .ok_or("tcps needs --fingerprint (64 hex digits, colons allowed)")?;
    let (Some(player), Some(secret)) = (&args.player, &args.secret) else {
        return Err("tcps needs --player and --secret (the player logs in)".into());
    };
    let player: PlayerId = player.parse().map_err(|e| format!("--player: {e}"))?;
    let secret: PlayerSecret = secret
        .trim()
        .parse()
        .map_err(|e| format!("--secret: {e}"))?;
    let content: u64 = args
        .content
        .parse()
        .map_err(|e| format!("--content {}: a content id ({e})", args.content))?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(args.key.trim(), &mut key).map_err(|e| format!("--key: {e}"))?;
    let trusted = vec![PublicKey(key)];
    let mut config = ReceiverConfig::new(trusted.clone());
    if let Some(window) = args.window {
        config.max_window = window.max(1);
    }
    let partial = PartFile::load_partial(&args.out, &trusted, config.max_chunks);
    let options = ReceiveOptions {
        config: Arc::new(config),
    };

    let bar = if args.quiet || args.progress_lines {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .map_err(|e| e.to_string())?,
    );
    let started = Instant::now();
    let name = ServerName::try_from("fleetwire.local").map_err(|e| e.to_string())?;
    let tls_config = tls::pinned_client_config(fp).map_err(|e| e.to_string())?;
    let mut conn = connect_player(
        addr,
        tls_config,
        name,
        Arc::new(ClientConfig::new(player, secret)),
    )
    .await
    .map_err(|e| e.to_string())?;
    let out = args.out.clone();
    let report = receive_framed_many(
        &mut conn.stream,
        &conn.already_read,
        &options,
        partial,
        |m| (m.file_id() == content).then(|| out.clone()),
        |p| {
            if p.file_id != content {
                return;
            }
            if args.progress_lines {
                print_progress(&p);
            }
            bar.set_length(p.total_bytes);
            bar.set_position(p.stored_bytes);
            if p.resumed_bytes > 0 {
                bar.set_message(format!("(resumed {} bytes)", p.resumed_bytes));
            }
            if p.rejected_chunks > 0 {
                bar.set_message(format!("{} chunks rejected", p.rejected_chunks));
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let Some(got) = report.received.iter().find(|r| r.dest == args.out) else {
        if let Some((_, reason)) = report.failed.iter().find(|(id, _)| *id == content) {
            return Err(format!("content {content}: {reason}"));
        }
        return Err(format!(
            "the server did not offer content {content} to this player"
        ));
    };
    bar.finish();
    let p = got.progress;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} bytes verified ({} resumed, {} received, {} chunks rejected) in {secs:.3} s, {:.1} MiB/s",
        args.out.display(),
        p.total_bytes,
        p.resumed_bytes,
        p.received_bytes,
        p.rejected_chunks,
        (p.total_bytes - p.resumed_bytes) as f64 / secs / 1_048_576.0
    );
    Ok(())
}

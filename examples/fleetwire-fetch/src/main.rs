//! `fleetwire-fetch`: downloads one content item from `fleetwire-server` over HTTP, HTTPS or
//! the framed transfer stream (`tcps://`, TCP 4702: the player logs in, then the server pushes
//! its content over the same TLS connection), verifying every chunk against the signed
//! manifest, with a progress bar. Kill it at any point and run the same command again: it
//! resumes from `OUT.part` and its record `OUT.part.state`, re-fetching at most one window.
//! `OUT` appears only once the whole file verified.
//!
//! ```text
//! fleetwire-fetch --server https://127.0.0.1:8443 --fingerprint AB:CD:… \
//!     --key <content key hex> --player <id> --secret <hex> --content 1 --out menu.mp4
//! fleetwire-fetch --server tcps://127.0.0.1:4702 --fingerprint AB:CD:… \
//!     --key <content key hex> --player <id> --secret <hex> --content 1 --out menu.mp4
//! ```
//!
//! Over `tcps://` the server offers every item assigned to the player; the one named by
//! `--content` is stored, the others are declined.

#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line program prints
#![allow(clippy::disallowed_methods)] // an example reads the clock

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

mod framed;

use clap::Parser;
use fleetwire_tokio::tls;
use fleetwire_tokio::transfer::{FetchOptions, HttpEndpoint, RequestSigner, fetch_http};
use fleetwire_transfer::PublicKey;
use indicatif::{ProgressBar, ProgressStyle};
use rustls::pki_types::ServerName;

#[derive(Parser)]
#[command(name = "fleetwire-fetch", version, about)]
struct Args {
    /// `http://ADDR:PORT`, `https://ADDR:PORT` or `tcps://ADDR:PORT` (the framed transfer
    /// stream over TLS, port 4702; needs --player and --secret).
    #[arg(long)]
    server: String,
    /// The server certificate's SHA-256 fingerprint (required for https).
    #[arg(long)]
    fingerprint: Option<String>,
    /// The content-signing public key (hex; `fleetwire-server content key`).
    #[arg(long)]
    key: String,
    /// This player's id.
    #[arg(long)]
    player: Option<String>,
    /// This player's secret (hex), to sign requests.
    #[arg(long, env = "FLEETWIRE_PLAYER_SECRET")]
    secret: Option<String>,
    /// The content id.
    #[arg(long)]
    content: String,
    /// Where the file goes.
    #[arg(long)]
    out: PathBuf,
    /// Chunks requested and not yet stored at once (1 = lock-step) [default: the library's,
    /// 64].
    #[arg(long)]
    window: Option<u32>,
    /// Chunks per request; connections = window / this [default: the library's, 16].
    #[arg(long)]
    per_request: Option<u32>,
    /// No progress bar; print one summary line.
    #[arg(long)]
    quiet: bool,
    /// Instead of a bar, print `progress STORED TOTAL RECEIVED RESUMED` on stdout at every
    /// change (for scripts and tests).
    #[arg(long)]
    progress_lines: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let (scheme, rest) = args
        .server
        .split_once("://")
        .ok_or("--server must look like https://127.0.0.1:8443")?;
    let addr: SocketAddr = rest
        .trim_end_matches('/')
        .parse()
        .map_err(|e| format!("--server {rest}: expected IP:PORT ({e})"))?;
    if scheme == "tcps" {
        return framed::run(&args, addr).await;
    }
    let mut endpoint = match scheme {
        "http" => HttpEndpoint::http(addr),
        "https" => {
            let fp = args
                .fingerprint
                .as_deref()
                .and_then(tls::parse_fingerprint)
                .ok_or("https needs --fingerprint (64 hex digits, colons allowed)")?;
            let config = tls::pinned_client_config(fp).map_err(|e| e.to_string())?;
            let name = ServerName::try_from("fleetwire.local").map_err(|e| e.to_string())?;
            HttpEndpoint::https(addr, config, name)
        }
        other => return Err(format!("--server scheme {other}: use http, https or tcps")),
    };
    if let (Some(player), Some(secret)) = (&args.player, &args.secret) {
        let mut id = [0u8; 16];
        let clean: String = player.chars().filter(|c| *c != '-').collect();
        hex::decode_to_slice(clean, &mut id).map_err(|e| format!("--player: {e}"))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(secret.trim(), &mut seed).map_err(|e| format!("--secret: {e}"))?;
        endpoint = endpoint.with_signer(Arc::new(RequestSigner::new(id, &seed)));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(args.key.trim(), &mut key).map_err(|e| format!("--key: {e}"))?;
    let defaults = FetchOptions::default();
    let options = FetchOptions {
        window: args.window.unwrap_or(defaults.window),
        chunks_per_request: args.per_request.unwrap_or(defaults.chunks_per_request),
        ..defaults
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
    let report = fetch_http(
        &endpoint,
        &args.content,
        &args.out,
        &[PublicKey(key)],
        &options,
        |p| {
            if args.progress_lines {
                framed::print_progress(&p);
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
    bar.finish();
    let p = report.progress;
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

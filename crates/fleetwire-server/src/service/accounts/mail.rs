//! Outgoing mail: one queue, one sender task. Requests only put a job on the queue (never wait
//! for a mail server), and the reset request queues a job whether or not the account exists (a
//! job for no account is dropped by the sender), so neither the answer nor its timing tells.
//!
//! With an `[smtp]` section the sender uses SMTP (lettre, rustls on ring, the Mozilla roots);
//! without one it appends to the outbox file, for development.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::mpsc;

use super::now;
use crate::config::{SmtpSettings, SmtpTls};

/// A message to send; `to: None` is the stand-in queued for a name that matches no account.
pub(crate) struct Job {
    pub(crate) to: Option<String>,
    pub(crate) subject: String,
    pub(crate) body: String,
}

/// Where the sender delivers.
enum Delivery {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
    Outbox(PathBuf),
}

/// The queue's sending end.
pub(crate) struct Mailer {
    tx: mpsc::Sender<Job>,
}

/// Jobs waiting to be sent; beyond it new ones are dropped (and logged).
const QUEUE: usize = 256;

impl Mailer {
    /// Checks the settings and starts the sender task.
    pub(crate) fn start(smtp: Option<&SmtpSettings>, outbox: PathBuf) -> Result<Self, String> {
        let delivery = match smtp {
            Some(s) => Delivery::Smtp {
                transport: Box::new(transport(s)?),
                from: s
                    .from
                    .parse()
                    .map_err(|e| format!("[smtp] from {:?}: {e}", s.from))?,
            },
            None => Delivery::Outbox(outbox),
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(sender(Arc::new(delivery), rx));
        Ok(Self { tx })
    }

    /// Queues a job without waiting.
    pub(crate) fn queue(&self, job: Job) {
        if let Err(e) = self.tx.try_send(job) {
            tracing::error!("mail queue: {e}; a message was dropped");
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn transport(s: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let builder = match s.tls {
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
            .map_err(|e| format!("[smtp] {}: {e}", s.host))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)
            .map_err(|e| format!("[smtp] {}: {e}", s.host))?,
        SmtpTls::None => {
            if !is_loopback(&s.host) {
                return Err(format!(
                    "[smtp] tls = \"none\" sends mail (reset links) in clear text: only for a relay on this machine, and {:?} is not a loopback address; use starttls or tls",
                    s.host
                ));
            }
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host).port(25)
        }
    };
    let mut builder = builder.timeout(Some(Duration::from_secs(
        s.timeout_secs.unwrap_or(30).max(1),
    )));
    if let Some(port) = s.port {
        builder = builder.port(port);
    }
    match (&s.username, &s.password) {
        (Some(u), Some(p)) => builder = builder.credentials(Credentials::new(u.clone(), p.clone())),
        (None, None) => {}
        _ => return Err("[smtp] username and password go together".into()),
    }
    Ok(builder.build())
}

/// Sends queued jobs one at a time, in order.
async fn sender(delivery: Arc<Delivery>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        let Some(to) = job.to else { continue };
        match &*delivery {
            Delivery::Smtp { transport, from } => {
                if let Err(e) = send_smtp(transport, from, &to, job.subject, job.body).await {
                    tracing::error!("mail to a user was not sent: {e}");
                }
            }
            Delivery::Outbox(path) => append_outbox(path.clone(), to, job.subject, job.body).await,
        }
    }
}

async fn send_smtp(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    to: &str,
    subject: String,
    body: String,
) -> Result<(), String> {
    let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
    // lettre picks the encoding: quoted-printable when a line (the reset link) is over 78
    // characters.
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())?;
    // One retry after a pause, for a relay that is restarting.
    let mut last = String::new();
    for attempt in 0..2 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        match transport.send(message.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// Appends a message to the outbox file (one JSON object per line), off the executor.
async fn append_outbox(path: PathBuf, to: String, subject: String, body: String) {
    let line = serde_json::json!({
        "at_ms": now().as_millis(),
        "to": to,
        "subject": subject,
        "body": body,
    })
    .to_string();
    let result = tokio::task::spawn_blocking(move || {
        crate::util::secret_file::append_private(&path, &line)
            .map_err(|e| format!("cannot write the outbox: {e}"))
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("{e}"),
        Err(e) => tracing::error!("outbox task failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_smtp_only_on_loopback() {
        let mut s = SmtpSettings {
            host: "mail.example.com".into(),
            port: Some(2525),
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: "fleetwire <noreply@example.com>".into(),
            timeout_secs: None,
        };
        assert!(transport(&s).unwrap_err().contains("loopback"));
        for host in ["127.0.0.1", "localhost", "::1", "[::1]"] {
            s.host = host.into();
            assert!(transport(&s).is_ok(), "{host}");
        }
        s.username = Some("u".into());
        assert!(transport(&s).unwrap_err().contains("together"));
    }
}

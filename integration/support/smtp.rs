//! A real SMTP server for tests (Python's aiosmtpd, driven by `smtp_sink.py` beside this
//! file), recording every message it accepts to a JSON Lines file. It can be stopped and
//! started again on the same port to simulate a mail outage.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde::Deserialize;

use super::free_port;

/// One accepted message, as `smtp_sink.py` writes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    pub received_ms: i64,
    pub rcpt_tos: Vec<String>,
    pub subject: String,
    /// `X-Sloguard-Key`: the notification's idempotency key.
    pub key: String,
    pub message_id: String,
    pub in_reply_to: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// The sink process, killed when dropped. Messages survive restarts (one file).
pub struct SmtpSink {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl SmtpSink {
    /// Starts the sink on a free loopback port, recording to `dir/mail.jsonl`.
    pub fn start(dir: &Path) -> SmtpSink {
        let mut sink = SmtpSink { child: None, port: free_port(), log: dir.join("mail.jsonl") };
        sink.resume();
        sink
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server: connections are refused until [`resume`](Self::resume).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Errors mean it already exited.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and waits until it listens.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "sink already running");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(self.port.to_string())
            .arg(&self.log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run python3 {}: {e} (scripts/test.sh installs aiosmtpd)", script.display())
            });
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line).expect("read sink readiness");
        assert_eq!(
            line.trim(),
            "ready",
            "smtp_sink.py did not start (is aiosmtpd installed? scripts/test.sh installs it)"
        );
        self.child = Some(child);
    }

    /// Every message accepted so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let Ok(text) = std::fs::read_to_string(&self.log) else { return Vec::new() };
        text.lines().map(|line| serde_json::from_str(line).expect("sink writes JSON lines")).collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

//! Email through lettre's async SMTP transport (rustls with ring): implicit TLS, STARTTLS, or
//! plaintext (config allows that to loopback only). Each message is multipart text + HTML with
//! `X-Sloguard-Key: <idempotency key>` and a Message-ID derived from it, so receivers and tests
//! can count by key, and a resolve names its page in `In-Reply-To` (mail clients thread them).

use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::{EmailNotifier, EmailTls};
use crate::spec::Route;

use super::transport::SendFuture;
use super::{DeliveryError, OutboxItem, Receipt, Transport};

/// Per SMTP command and connection: servers answer in milliseconds; a minute would hold up
/// every other notification behind a hung server.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The domain part of Message-IDs: ours, so they never collide with the server's.
const MESSAGE_ID_DOMAIN: &str = "sloguard";

/// Why the email transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmailSetupError {
    /// The relay host could not be set up for TLS (lettre validates the name as a TLS server name).
    #[error("SMTP relay {host}: {source}")]
    Relay { host: String, source: lettre::transport::smtp::Error },
    /// `from` is not a mailbox (config load should have caught it).
    #[error("from address {from:?}: {source}")]
    From { from: String, source: lettre::address::AddressError },
}

pub struct EmailTransport {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl EmailTransport {
    pub fn new(config: &EmailNotifier) -> Result<EmailTransport, EmailSetupError> {
        let relay = |source| EmailSetupError::Relay { host: config.host.clone(), source };
        let builder = match config.tls {
            EmailTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(relay)?,
            EmailTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(relay)?,
            EmailTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder.port(config.port).timeout(Some(SMTP_TIMEOUT));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()));
        }
        let from = config.from.parse().map_err(|source| EmailSetupError::From { from: config.from.clone(), source })?;
        Ok(EmailTransport { mailer: builder.build(), from })
    }

    async fn deliver(&self, item: &OutboxItem) -> Result<Receipt, DeliveryError> {
        let Route::Email { to } = &item.route else {
            return Err(DeliveryError::Rejected(format!("route {} is not an email route", item.route)));
        };
        let to: Mailbox = to.parse().map_err(|e| DeliveryError::Rejected(format!("bad address {to:?}: {e}")))?;
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(item.message.title.clone())
            .message_id(Some(message_id(&item.key)))
            .header(SloguardKey(item.key.clone()));
        if let Some(page) = &item.reply_to {
            builder = builder.in_reply_to(message_id(page)).references(message_id(page));
        }
        let body = MultiPart::alternative()
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(item.message.text.clone()))
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(item.message.html.clone()));
        let email = builder.multipart(body).map_err(|e| DeliveryError::Rejected(format!("building the email: {e}")))?;
        match self.mailer.send(email).await {
            Ok(_) => Ok(Receipt::default()),
            // A 5xx reply refuses this message for good; 4xx, connection and TLS failures and
            // timeouts may pass.
            Err(e) if e.is_permanent() => Err(DeliveryError::Rejected(format!("SMTP: {e}"))),
            Err(e) => Err(DeliveryError::Transient(format!("SMTP: {e}"))),
        }
    }
}

impl Transport for EmailTransport {
    fn send<'a>(&'a self, item: &'a OutboxItem, _replying_to: Option<&'a Receipt>) -> SendFuture<'a> {
        Box::pin(self.deliver(item))
    }
}

fn message_id(key: &str) -> String {
    format!("<{key}@{MESSAGE_ID_DOMAIN}>")
}

/// `X-Sloguard-Key`: the notification's idempotency key.
#[derive(Clone)]
struct SloguardKey(String);

impl Header for SloguardKey {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Sloguard-Key")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(SloguardKey(s.to_string()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

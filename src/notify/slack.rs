//! Slack through `slack-morphism`'s Web API client: `chat.postMessage` with Block Kit, and for
//! a resolve `chat.update` of the page's message plus a reply in its thread.
//!
//! The connector is built here rather than with `SlackClientHyperConnector::new()`, which is
//! https-only: `https_or_http` lets tests point `api_url` at a loopback stand-in. Calls are
//! wrapped in a timeout because the client has none.

use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use crate::config::SlackNotifier;
use crate::spec::Route;

use super::transport::SendFuture;
use super::{AlertStatus, DeliveryError, Message, OutboxItem, Receipt, Transport};

/// Per Web API call: Slack answers in well under a second; ten allows a slow network without
/// stalling the delivery loop for long.
const SLACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack cuts header blocks at 150 characters and section texts at 3000; longer is refused.
const HEADER_MAX_CHARS: usize = 150;
const SECTION_MAX_CHARS: usize = 3000;
/// A section block holds at most ten fields.
const MAX_FIELDS: usize = 10;

/// Slack error codes that no retry fixes: wrong channel, bad or revoked token, refused content.
/// Anything else (`internal_error`, `service_unavailable`, unknown codes) is retried.
const PERMANENT_CODES: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "msg_too_long",
    "no_text",
    "invalid_blocks",
    "message_not_found",
    "cant_update_message",
];

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

pub struct SlackTransport {
    client: SlackClient<Connector>,
    token: SlackApiToken,
}

impl SlackTransport {
    pub fn new(config: &SlackNotifier) -> Result<SlackTransport, std::io::Error> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        // slack-morphism joins `<base>/<method>`: a trailing slash in the config would double.
        let base = config.api_url.trim_end_matches('/');
        let connector = SlackClientHyperConnector::with_connector(https).with_slack_api_url(base);
        let token = SlackApiToken::new(SlackApiTokenValue(config.token.expose().to_string()));
        Ok(SlackTransport { client: SlackClient::new(connector), token })
    }

    async fn deliver(&self, item: &OutboxItem, replying_to: Option<&Receipt>) -> Result<Receipt, DeliveryError> {
        let Route::Slack { channel } = &item.route else {
            return Err(DeliveryError::Rejected(format!("route {} is not a Slack route", item.route)));
        };
        let session = self.client.open_session(&self.token);
        let content = blocks(&item.message);
        let thread = replying_to.and_then(|r| Some((r.slack_channel.clone()?, r.slack_ts.clone()?)));
        let resolved = item.message.alert.as_ref().is_some_and(|a| a.status == AlertStatus::Resolved);
        if let (Some((channel_id, ts)), true) = (&thread, resolved) {
            // Update first, then reply: a crash between the two repeats only the update, which
            // is idempotent; the thread reply is the last call, right before the sent mark.
            let update = SlackApiChatUpdateRequest::new(channel_id.clone().into(), content.clone(), ts.clone().into());
            call(session.chat_update(&update)).await?;
        }
        let mut post = SlackApiChatPostMessageRequest::new(channel.clone().into(), content);
        if let Some((channel_id, ts)) = thread {
            post = SlackApiChatPostMessageRequest::new(channel_id.into(), post.content).with_thread_ts(ts.into());
        }
        let res = call(session.chat_post_message(&post)).await?;
        Ok(Receipt { slack_channel: Some(res.channel.to_string()), slack_ts: Some(res.ts.to_string()) })
    }
}

impl Transport for SlackTransport {
    fn send<'a>(&'a self, item: &'a OutboxItem, replying_to: Option<&'a Receipt>) -> SendFuture<'a> {
        Box::pin(self.deliver(item, replying_to))
    }
}

/// Runs one Web API call under [`SLACK_TIMEOUT`] and classifies its failure.
async fn call<T>(request: impl Future<Output = Result<T, SlackClientError>>) -> Result<T, DeliveryError> {
    match tokio::time::timeout(SLACK_TIMEOUT, request).await {
        Err(_) => Err(DeliveryError::Transient(format!("Slack did not answer within {SLACK_TIMEOUT:?}"))),
        Ok(Ok(res)) => Ok(res),
        Ok(Err(e)) => Err(classify(e)),
    }
}

fn classify(e: SlackClientError) -> DeliveryError {
    match e {
        SlackClientError::RateLimitError(limit) => DeliveryError::RateLimited { retry_after: limit.retry_after },
        // `{"ok":false}` arrives with HTTP 200; its `error` code says whether to retry.
        SlackClientError::ApiError(api) if PERMANENT_CODES.contains(&api.code.as_str()) => {
            DeliveryError::Rejected(format!("Slack error {}", api.code))
        }
        SlackClientError::ApiError(api) => DeliveryError::Transient(format!("Slack error {}", api.code)),
        SlackClientError::HttpError(http) if http.status_code.is_client_error() => {
            DeliveryError::Rejected(format!("Slack answered HTTP {}", http.status_code))
        }
        SlackClientError::HttpError(http) => {
            DeliveryError::Transient(format!("Slack answered HTTP {}", http.status_code))
        }
        other => DeliveryError::Transient(format!("Slack request failed: {other}")),
    }
}

/// Block Kit: a header with the title, the facts as fields, and a context line of links. The
/// plain `text` is the notification fallback (what phones and screen readers show).
fn blocks(message: &Message) -> SlackMessageContent {
    let mut blocks: Vec<SlackBlock> =
        vec![SlackHeaderBlock::new(pt!(truncate(&message.title, HEADER_MAX_CHARS))).into()];
    for chunk in message.fields.chunks(MAX_FIELDS) {
        let fields: Vec<SlackBlockText> =
            chunk.iter().map(|(label, value)| md!(format!("*{}*\n{}", escape(label), escape(value)))).collect();
        blocks.push(SlackSectionBlock::new().with_fields(fields).into());
    }
    if !message.links.is_empty() {
        let links: Vec<String> =
            message.links.iter().map(|(label, url)| format!("<{}|{}>", escape(url), escape(label))).collect();
        blocks.push(SlackSectionBlock::new().with_text(md!(truncate(&links.join("  |  "), SECTION_MAX_CHARS))).into());
    }
    SlackMessageContent::new().with_text(message.title.clone()).with_blocks(blocks)
}

/// Slack's mrkdwn needs only `&`, `<` and `>` escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max_chars - 1).collect();
    out.push('…');
    out
}

//! Sends the outbox's deliveries. Each server takes due deliveries under a lease, as many as
//! it has free places (a slow receiver holds a place, never a build), POSTs them and records
//! how it went; the store decides when the next attempt is due. A server wakes when the change
//! feed says deliveries were queued, when one of its own attempts ends, and once a second for
//! the back-offs that ran out.

use super::payload;
use crate::{AppInner, AppState};
use kiln_store::{Attempt, Change, DueDelivery, HookEvent, HookRecord};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, Notify, OwnedSemaphorePermit, Semaphore};

/// Deliveries one server has in flight at most.
const IN_FLIGHT: usize = 32;
/// Of a receiver's answer, this much is kept (GitLab's logs keep a part too).
const MAX_RESPONSE_BYTES: usize = 8 * 1024;
/// How often due retries are looked for when nothing wakes the sender.
const TICK: Duration = Duration::from_secs(1);
/// GitLab's hook requests' `User-Agent` names the product and its version.
const USER_AGENT: &str = concat!("Kiln/", env!("CARGO_PKG_VERSION"));

/// The HTTP side of deliveries: one client that verifies TLS and one that does not (a hook's
/// `enable_ssl_verification`), neither following redirects nor, unless local hooks are
/// allowed, reaching a non-public address.
pub struct Sender {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    timeout: Duration,
    /// Wakes the loop when an attempt ends and its place is free again.
    freed: Notify,
}

/// What one request carries besides its body.
pub struct Envelope<'a> {
    pub event: HookEvent,
    pub event_uuid: &'a str,
    pub token: Option<&'a str>,
    pub instance: &'a str,
}

impl Sender {
    pub fn new(allow_local: bool, timeout: Duration) -> anyhow::Result<Sender> {
        let client = |verify: bool| {
            let mut builder = reqwest::Client::builder()
                .timeout(timeout)
                .connect_timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(USER_AGENT)
                .danger_accept_invalid_certs(!verify);
            if !allow_local {
                builder = builder.dns_resolver(Arc::new(super::target::PublicOnly));
            }
            builder.build()
        };
        Ok(Sender {
            verified: client(true)?,
            unverified: client(false)?,
            timeout,
            freed: Notify::new(),
        })
    }

    /// How long a server holds a delivery it took: the attempt's whole time and a margin, so
    /// that a server that dies mid-attempt lets another retry it soon after.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }

    /// POSTs `body` to the hook once, with GitLab's headers; a new `X-Gitlab-Webhook-UUID` per
    /// attempt, the event's uuid kept across them.
    pub async fn post(&self, hook: &HookRecord, envelope: &Envelope<'_>, body: String) -> Attempt {
        let client = if hook.enable_ssl_verification {
            &self.verified
        } else {
            &self.unverified
        };
        let mut request = client
            .post(&hook.url)
            .header("Content-Type", "application/json")
            .header("X-Gitlab-Event", payload::event_name(envelope.event))
            .header("X-Gitlab-Webhook-UUID", kiln_store::hooks::new_uuid())
            .header("X-Gitlab-Event-UUID", envelope.event_uuid)
            .header("Idempotency-Key", envelope.event_uuid)
            .header("X-Gitlab-Instance", envelope.instance)
            .body(body.clone());
        if let Some(token) = envelope.token {
            request = request.header("X-Gitlab-Token", token);
        }
        let started = Instant::now();
        let outcome = match request.send().await {
            Ok(response) => {
                let status = i64::from(response.status().as_u16());
                read_some(response)
                    .await
                    .map(|text| (status, text))
                    .map_err(describe)
            }
            Err(err) => Err(describe(err)),
        };
        let duration_ms = started.elapsed().as_millis() as i64;
        match outcome {
            Ok((status, text)) => Attempt {
                response_status: Some(status),
                duration_ms,
                error: None,
                request_body: body,
                response_body: Some(text),
            },
            Err(error) => Attempt {
                response_status: None,
                duration_ms,
                error: Some(error),
                request_body: body,
                response_body: None,
            },
        }
    }
}

/// The start of an answer's body, as text.
async fn read_some(mut response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut kept: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_RESPONSE_BYTES - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if kept.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&kept).into_owned())
}

/// Why an attempt got no answer, in words a hook's log can show.
fn describe(err: reqwest::Error) -> String {
    if err.is_timeout() {
        "execution expired".to_owned()
    } else if err.is_connect() {
        let mut cause: &dyn std::error::Error = &err;
        while let Some(next) = cause.source() {
            cause = next;
        }
        format!("Failed to connect: {cause}")
    } else {
        let mut text = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(next) = cause {
            text = format!("{text}: {next}");
            cause = next.source();
        }
        text
    }
}

/// An attempt that ended, to record; its place is free once it is recorded.
struct Ended {
    id: i64,
    attempt: Attempt,
    _place: OwnedSemaphorePermit,
}

/// Sends deliveries for as long as the server runs.
pub fn start(app: AppState) {
    let (ended, to_record) = mpsc::channel::<Ended>(IN_FLIGHT);
    tokio::spawn(record(app.clone(), to_record));
    tokio::spawn(async move {
        let places = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut changes = app.store.feed().subscribe();
        loop {
            let free = places.available_permits();
            if free > 0 {
                let lease = app.webhooks.lease().as_millis() as i64;
                let claimed = app
                    .store
                    .hooks()
                    .claim_due(&app.instance_id, lease, free as i64)
                    .await;
                match claimed {
                    Ok(due) => {
                        for delivery in due {
                            let Ok(place) = places.clone().try_acquire_owned() else {
                                break;
                            };
                            let (app, ended) = (app.clone(), ended.clone());
                            tokio::spawn(async move {
                                let id = delivery.delivery.id;
                                match deliver(&app, delivery).await {
                                    Some(attempt) => {
                                        let _ = ended
                                            .send(Ended {
                                                id,
                                                attempt,
                                                _place: place,
                                            })
                                            .await;
                                    }
                                    None => {
                                        drop(place);
                                        app.webhooks.freed.notify_one();
                                    }
                                }
                            });
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "webhooks: could not take deliveries"),
                }
            }
            wait_for_work(&app, &mut changes).await;
        }
    });
}

/// Records ended attempts, those that ended together in one transaction, and frees their
/// places.
async fn record(app: AppState, mut ended: mpsc::Receiver<Ended>) {
    while let Some(first) = ended.recv().await {
        let mut batch = vec![first];
        while batch.len() < IN_FLIGHT {
            match ended.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let attempts: Vec<(i64, &Attempt)> = batch.iter().map(|e| (e.id, &e.attempt)).collect();
        if let Err(err) = app
            .store
            .hooks()
            .record_attempts(&app.instance_id, &attempts)
            .await
        {
            // Their leases run out and they are tried again.
            tracing::warn!(error = %err, "webhooks: could not record attempts");
        }
        drop(batch);
        app.webhooks.freed.notify_one();
    }
}

/// Until deliveries are queued, an attempt of this server ends, or a tick passes.
async fn wait_for_work(app: &AppState, changes: &mut broadcast::Receiver<Change>) {
    let tick = tokio::time::sleep(TICK);
    tokio::pin!(tick);
    loop {
        tokio::select! {
            _ = &mut tick => return,
            _ = app.webhooks.freed.notified() => return,
            change = changes.recv() => match change {
                Ok(Change::Deliveries) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => {
                    (&mut tick).await;
                    return;
                }
            },
        }
    }
}

/// One POST of `body` about `event` to the hook, with its token in clear.
pub async fn attempt(
    app: &AppInner,
    hook: &HookRecord,
    event: HookEvent,
    event_uuid: &str,
    body: String,
) -> Attempt {
    let token = hook
        .token_sealed
        .as_deref()
        .and_then(|sealed| app.cipher.decrypt(sealed).ok());
    let envelope = Envelope {
        event,
        event_uuid,
        token: token.as_deref(),
        instance: &app.config.external_url,
    };
    app.webhooks.post(hook, &envelope, body).await
}

/// One attempt at one delivery (None: nothing was sent). The body is written at the first attempt and sent
/// unchanged at every later one.
async fn deliver(app: &AppState, due: DueDelivery) -> Option<Attempt> {
    let DueDelivery { delivery, hook } = due;
    let body = match delivery.request_body.clone() {
        Some(body) => body,
        None => {
            let made = payload::for_event(
                &app.store,
                &app.config.external_url,
                hook.project_id,
                delivery.event,
                (delivery.subject_id, delivery.subject_status.as_str()),
            )
            .await;
            match made {
                Ok(Some(value)) => value.to_string(),
                Ok(None) => {
                    let why = "what the event told of is gone";
                    if let Err(err) = app
                        .store
                        .hooks()
                        .give_up(delivery.id, &app.instance_id, why)
                        .await
                    {
                        tracing::warn!(delivery = delivery.id, error = %err, "webhooks: could not give a delivery up");
                    }
                    return None;
                }
                Err(err) => {
                    tracing::warn!(delivery = delivery.id, error = %format!("{err:#}"), "webhooks: could not write a payload");
                    return None;
                }
            }
        }
    };
    let attempt = attempt(app, &hook, delivery.event, &delivery.event_uuid, body).await;
    app.metrics
        .webhook_attempt(delivery.event, attempt.succeeded());
    if !attempt.succeeded() {
        tracing::info!(
            hook = hook.id,
            delivery = delivery.id,
            status = attempt.response_status,
            error = attempt.error.as_deref().unwrap_or(""),
            "webhook delivery failed; it will be tried again"
        );
    }
    Some(attempt)
}

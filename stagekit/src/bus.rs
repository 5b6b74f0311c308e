//! Publishing on JetStream the way every stage must: with a `Nats-Msg-Id`, so
//! that a repeated publish is dropped by the stream, and waiting for the
//! stream's acknowledgement, so that "published" means stored.

use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};

/// How long a publish waits for the stream's acknowledgement. A stream
/// answers in milliseconds; one that does not has lost its leader (a node
/// down, an election, no quorum) and swallows the publish until the next is
/// elected. The publisher's own retry (the message id makes it safe) then
/// reaches the new leader within seconds, rather than after async-nats's 5 s.
pub const ACK_WAIT: Duration = Duration::from_secs(2);

/// A publish JetStream did not acknowledge.
#[derive(Debug, thiserror::Error)]
#[error("publishing on {subject}: {message}")]
pub struct PublishFailed {
    subject: String,
    message: String,
}

/// Publishes `payload` on `subject` with the message id `msg_id` and the
/// current trace context, and waits until JetStream has stored it (or
/// recognised it as a duplicate).
pub async fn publish_acked(
    js: &jetstream::Context,
    subject: String,
    msg_id: String,
    payload: Vec<u8>,
) -> Result<(), PublishFailed> {
    let failed = |e: &dyn std::fmt::Display| PublishFailed {
        subject: subject.clone(),
        message: e.to_string(),
    };
    let mut headers = async_nats::HeaderMap::new();
    crate::trace::inject(&mut headers);
    let publish = PublishMessage::build()
        .payload(payload.into())
        .headers(headers)
        .message_id(msg_id);
    let ack = js
        .send_publish(subject.clone(), publish)
        .await
        .map_err(|e| failed(&e))?;
    match tokio::time::timeout(ACK_WAIT, ack).await {
        Ok(acked) => acked.map(|_| ()).map_err(|e| failed(&e)),
        Err(_) => Err(failed(&format_args!(
            "no acknowledgement within {} s",
            ACK_WAIT.as_secs()
        ))),
    }
}

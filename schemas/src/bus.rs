//! Publishing on JetStream the way every stage must: with a `Nats-Msg-Id`, so
//! that a repeated publish is dropped by the stream, and waiting for the
//! stream's acknowledgement, so that "published" means stored.

use async_nats::jetstream::{self, message::PublishMessage};

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
    ack.await.map(|_| ()).map_err(|e| failed(&e))
}

//! The broker as the consumer sees it: what a transport hands out ([`Received`]) and what the
//! consumer asks of it ([`Broker`]). The Redis and RabbitMQ transports implement it in
//! `rstuf-adapters`; [`crate::testing::MemoryBroker`] in memory.

use async_trait::async_trait;
use rstuf_celery::{MessageError, TaskMessage};
use rstuf_engine::ports::PortError;

/// One item taken from a queue.
#[derive(Debug)]
pub enum Received<H> {
    /// A task message; `handle` acknowledges or returns it on its transport.
    Task {
        /// The decoded message.
        message: TaskMessage,
        /// The queue it came from.
        queue: String,
        /// The transport's hold on the delivery.
        handle: H,
    },
    /// Something that is not a usable task message. The transport has already removed it
    /// from the queue (it could never succeed, and must not block the queue); `task_id` is set
    /// when the headers named one, so a FAILURE record can answer the sender.
    Malformed {
        /// The queue it came from.
        queue: String,
        /// Why it cannot be used.
        error: MessageError,
        /// The task id, if readable.
        task_id: Option<String>,
    },
}

/// A broker transport.
///
/// Contract:
/// - every delivery [`next_batch`](Broker::next_batch) returns is the consumer's until it calls
///   [`ack`](Broker::ack) (never delivered again) or [`hand_back`](Broker::hand_back)
///   (delivered again, to any consumer);
/// - a delivery neither acknowledged nor handed back (its consumer died) is delivered again
///   eventually: on Redis once [`maintain`](Broker::maintain) of any consumer finds it older
///   than the visibility timeout and not [`touch`](Broker::touch)ed since; on AMQP when the
///   channel closes.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// The transport's hold on one delivery.
    type Handle: Send + Sync + 'static;
    /// The next delivery and up to `max - 1` more already waiting (empty after a short wait
    /// without one, so a stopping consumer gets control back). Every one returned is the
    /// consumer's to run.
    async fn next_batch(&self, max: usize) -> Result<Vec<Received<Self::Handle>>, PortError>;
    /// Done: never deliver again.
    async fn ack(&self, handle: &Self::Handle) -> Result<(), PortError>;
    /// Not done: deliver again (to any consumer).
    async fn hand_back(&self, handle: &Self::Handle) -> Result<(), PortError>;
    /// Still running: keep it from being restored to its queue.
    async fn touch(&self, _handle: &Self::Handle) -> Result<(), PortError> {
        Ok(())
    }
    /// `held` deliveries now wait for their ETA outside the consumer's slots. A transport
    /// that bounds unacknowledged deliveries (AMQP's prefetch window) widens the bound by
    /// that many, as Celery does, so waiting tasks do not keep others from being delivered.
    async fn set_held(&self, _held: usize) -> Result<(), PortError> {
        Ok(())
    }
    /// Periodic housekeeping: restores deliveries of consumers that died. Returns how many
    /// it restored.
    async fn maintain(&self) -> Result<usize, PortError> {
        Ok(0)
    }
    /// The consumer stops taking messages: hand back anything taken but not yet given to it.
    async fn close(&self) -> Result<(), PortError> {
        Ok(())
    }
}

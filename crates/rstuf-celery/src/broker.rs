//! What a consumer receives from any transport, before the worker decides what to do with it.

use crate::{MessageError, TaskMessage};

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

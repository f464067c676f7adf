//! The Celery broker on AMQP 0-9-1 (RabbitMQ), as kombu and py-amqp use it: for each queue a durable direct exchange and a durable classic
//! queue of the same name, bound with the queue name as routing key; producers publish to the
//! default exchange; headers travel as an AMQP table and the body is the raw JSON.
//!
//! One connection with one channel consumes every queue, with a channel-wide prefetch equal to
//! the worker's concurrency. A background task owns the connection and reconnects (with
//! back-off) whenever it fails; deliveries of a lost connection are requeued by RabbitMQ, and
//! their late acknowledgements fail harmlessly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::Acker;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use rstuf_celery::TaskMessage;
use rstuf_consumer::{Broker, Received};
use rstuf_engine::ports::{PortError, PortErrorKind};
use serde_json::{Map, Number, Value};
use tokio::sync::{Mutex, RwLock, mpsc};

fn amqp_error(context: &str, e: lapin::Error) -> PortError {
    crate::error::ServiceError::port(e, context)
}

/// How long [`AmqpBroker::next`] waits before giving the consumer loop control back.
pub const WAIT: Duration = Duration::from_secs(1);

/// The transport's hold on one delivery: acknowledges or returns it on the channel it came
/// from.
#[derive(Debug)]
pub struct AmqpDelivery {
    acker: Acker,
}

/// A consumer and producer on RabbitMQ.
#[derive(Clone)]
pub struct AmqpBroker {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    queues: Vec<String>,
    prefetch: u16,
    deliveries: Mutex<mpsc::Receiver<Received<AmqpDelivery>>>,
    publisher: RwLock<Option<Channel>>,
    /// The consuming channel of the live session, whose window `held` widens.
    consuming: RwLock<Option<Channel>>,
    /// Deliveries the consumer holds outside its slots (waiting for their ETA).
    held: std::sync::atomic::AtomicUsize,
}

impl Inner {
    /// The prefetch window: the consumer's slots plus the deliveries it holds outside them.
    fn window(&self) -> u16 {
        let held = self.held.load(std::sync::atomic::Ordering::SeqCst);
        u16::try_from(usize::from(self.prefetch) + held).unwrap_or(u16::MAX)
    }
}

impl std::fmt::Debug for AmqpBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpBroker")
            .field("queues", &self.inner.queues)
            .field("prefetch", &self.inner.prefetch)
            .finish_non_exhaustive()
    }
}

impl AmqpBroker {
    /// Connects to `url` (`RSTUF_BROKER_SERVER`, `amqp://user:pass@host:port[/vhost]`),
    /// declares `queues` exactly as kombu does and starts consuming them with at most
    /// `prefetch` unacknowledged deliveries. Fails if the first connection fails; later
    /// failures are retried in the background.
    pub async fn connect(url: &str, queues: &[&str], prefetch: u16) -> Result<Self, PortError> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        let inner = Arc::new(Inner {
            url: kombu_vhost(url),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            prefetch: prefetch.max(1),
            deliveries: Mutex::new(rx),
            publisher: RwLock::new(None),
            consuming: RwLock::new(None),
            held: std::sync::atomic::AtomicUsize::new(0),
        });
        let session = Session::open(&inner, tx.clone()).await?;
        tokio::spawn(supervise(Arc::downgrade(&inner), tx, session));
        Ok(AmqpBroker { inner })
    }

    /// Waits up to [`WAIT`] for the next delivery of any queue.
    pub async fn next(&self) -> Result<Option<Received<AmqpDelivery>>, PortError> {
        Ok(self.next_batch(1).await?.into_iter().next())
    }

    /// Up to `max` deliveries: the next one (waiting up to [`WAIT`]) and those already here.
    pub async fn next_batch(&self, max: usize) -> Result<Vec<Received<AmqpDelivery>>, PortError> {
        let mut rx = self.inner.deliveries.lock().await;
        let first = match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(received)) => received,
            Ok(None) => {
                return Err(PortError::new(
                    PortErrorKind::Transient,
                    "consuming: the consumer stopped",
                ));
            }
            Err(_) => return Ok(Vec::new()),
        };
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(received) => batch.push(received),
                Err(_) => break,
            }
        }
        Ok(batch)
    }

    /// Acknowledges a delivery: it is done and never delivered again.
    pub async fn ack(&self, delivery: &AmqpDelivery) -> Result<(), PortError> {
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(|e| amqp_error("acknowledging a message", e))
    }

    /// Returns a delivery to its queue, to be delivered again.
    pub async fn hand_back(&self, delivery: &AmqpDelivery) -> Result<(), PortError> {
        delivery
            .acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .map(|_| ())
            .map_err(|e| amqp_error("handing a message back", e))
    }

    /// Sends a message to `queue` through the default exchange, as kombu publishes.
    pub async fn publish(&self, message: &TaskMessage, queue: &str) -> Result<(), PortError> {
        let channel = self.inner.publisher.read().await.clone();
        let channel = channel
            .ok_or_else(|| PortError::new(PortErrorKind::Transient, "publishing: not connected"))?;
        let properties = BasicProperties::default()
            .with_content_type(ShortString::from("application/json"))
            .with_content_encoding(ShortString::from("utf-8"))
            .with_headers(field_table(&message.headers))
            .with_delivery_mode(2)
            .with_correlation_id(ShortString::from(message.id.as_str()))
            .with_reply_to(ShortString::from(uuid::Uuid::new_v4().to_string()));
        channel
            .basic_publish(
                ShortString::from(""),
                ShortString::from(queue),
                BasicPublishOptions::default(),
                &message.body(),
                properties,
            )
            .await
            .map_err(|e| amqp_error("publishing", e))?
            .await
            .map_err(|e| amqp_error("publishing", e))?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Broker for AmqpBroker {
    type Handle = AmqpDelivery;
    async fn next_batch(&self, max: usize) -> Result<Vec<Received<AmqpDelivery>>, PortError> {
        AmqpBroker::next_batch(self, max).await
    }
    async fn ack(&self, handle: &AmqpDelivery) -> Result<(), PortError> {
        AmqpBroker::ack(self, handle).await
    }
    async fn hand_back(&self, handle: &AmqpDelivery) -> Result<(), PortError> {
        AmqpBroker::hand_back(self, handle).await
    }
    /// Celery's answer to ETA tasks on AMQP: each one held raises the prefetch window by one
    /// (`basic.qos` again on the live channel), so they never use up the consumer's slots.
    async fn set_held(&self, held: usize) -> Result<(), PortError> {
        self.inner
            .held
            .store(held, std::sync::atomic::Ordering::SeqCst);
        let channel = self.inner.consuming.read().await.clone();
        match channel {
            Some(channel) => channel
                .basic_qos(self.inner.window(), BasicQosOptions { global: true })
                .await
                .map_err(|e| amqp_error("widening the prefetch window", e)),
            None => Ok(()),
        }
    }
}

/// kombu reads an empty path, `/` or `//` as the vhost `/`; lapin needs it spelled `%2f`.
fn kombu_vhost(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let vhost = match path {
        "" | "/" => "%2f",
        other => other,
    };
    format!("{scheme}://{authority}/{vhost}")
}

/// One live connection and its consumers.
struct Session {
    connection: Connection,
    consumers: tokio::task::JoinSet<String>,
}

impl Session {
    async fn open(
        inner: &Inner,
        tx: mpsc::Sender<Received<AmqpDelivery>>,
    ) -> Result<Session, PortError> {
        let connection = Connection::connect(&inner.url, ConnectionProperties::default())
            .await
            .map_err(|e| amqp_error("connecting to the broker", e))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| amqp_error("opening a channel", e))?;
        channel
            .basic_qos(inner.window(), BasicQosOptions { global: true })
            .await
            .map_err(|e| amqp_error("setting the prefetch", e))?;
        let mut consumers = tokio::task::JoinSet::new();
        for queue in &inner.queues {
            declare(&channel, queue).await?;
            let consumer = channel
                .basic_consume(
                    ShortString::from(queue.as_str()),
                    ShortString::from(format!("rstuf-worker-{}", uuid::Uuid::new_v4().simple())),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| amqp_error("consuming", e))?;
            consumers.spawn(forward(consumer, queue.clone(), tx.clone()));
        }
        let publisher = connection
            .create_channel()
            .await
            .map_err(|e| amqp_error("opening a channel", e))?;
        *inner.publisher.write().await = Some(publisher);
        *inner.consuming.write().await = Some(channel);
        Ok(Session {
            connection,
            consumers,
        })
    }

    /// Waits until a consumer stops (the connection or channel failed).
    async fn wait(mut self) -> String {
        let reason = match self.consumers.join_next().await {
            Some(Ok(reason)) => reason,
            Some(Err(e)) => format!("consumer task: {e}"),
            None => "no consumers".into(),
        };
        self.consumers.abort_all();
        let _ = self.connection.close(200, ShortString::from("OK")).await;
        reason
    }
}

/// Declares a queue as kombu does: durable direct exchange, durable classic queue, binding.
async fn declare(channel: &Channel, queue: &str) -> Result<(), PortError> {
    channel
        .exchange_declare(
            ShortString::from(queue),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_error("declaring the exchange", e))?;
    channel
        .queue_declare(
            ShortString::from(queue),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_error("declaring the queue", e))?;
    channel
        .queue_bind(
            ShortString::from(queue),
            ShortString::from(queue),
            ShortString::from(queue),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| amqp_error("binding the queue", e))
}

/// Passes a consumer's deliveries on until it fails; returns why it stopped.
async fn forward(
    mut consumer: lapin::Consumer,
    queue: String,
    tx: mpsc::Sender<Received<AmqpDelivery>>,
) -> String {
    while let Some(delivery) = consumer.next().await {
        let delivery = match delivery {
            Ok(delivery) => delivery,
            Err(e) => return format!("consumer of {queue}: {e}"),
        };
        let headers = delivery
            .properties
            .headers()
            .as_ref()
            .map(json_table)
            .unwrap_or_default();
        let received = match TaskMessage::from_parts(headers.clone(), &delivery.data) {
            Ok(message) => Received::Task {
                message,
                queue: queue.clone(),
                handle: AmqpDelivery {
                    acker: delivery.acker,
                },
            },
            Err(error) => {
                // Never deliverable: dropped so it does not block the queue.
                let _ = delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await;
                Received::Malformed {
                    queue: queue.clone(),
                    error,
                    task_id: headers.get("id").and_then(Value::as_str).map(String::from),
                }
            }
        };
        if tx.send(received).await.is_err() {
            return "the worker stopped".into();
        }
    }
    format!("consumer of {queue} was cancelled")
}

async fn supervise(
    inner: std::sync::Weak<Inner>,
    tx: mpsc::Sender<Received<AmqpDelivery>>,
    session: Session,
) {
    let mut session = Some(session);
    let mut backoff = Duration::from_millis(200);
    loop {
        if let Some(live) = session.take() {
            let reason = live.wait().await;
            eprintln!("rstuf-worker: broker connection lost ({reason}); reconnecting");
            backoff = Duration::from_millis(200);
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        *strong.publisher.write().await = None;
        if tx.is_closed() {
            return;
        }
        match Session::open(&strong, tx.clone()).await {
            Ok(live) => {
                eprintln!("rstuf-worker: broker connection restored");
                session = Some(live);
            }
            Err(e) => {
                drop(strong);
                eprintln!("rstuf-worker: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// An AMQP header table as JSON, as Celery reads it.
fn json_table(table: &FieldTable) -> Map<String, Value> {
    table
        .inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json_value(v)))
        .collect()
}

fn json_value(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::from(*n),
        AMQPValue::ShortShortUInt(n) => Value::from(*n),
        AMQPValue::ShortInt(n) => Value::from(*n),
        AMQPValue::ShortUInt(n) => Value::from(*n),
        AMQPValue::LongInt(n) => Value::from(*n),
        AMQPValue::LongUInt(n) => Value::from(*n),
        AMQPValue::LongLongInt(n) => Value::from(*n),
        AMQPValue::Timestamp(n) => Value::from(*n),
        AMQPValue::Float(x) => Number::from_f64(f64::from(*x)).map_or(Value::Null, Value::Number),
        AMQPValue::Double(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            let x = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            Number::from_f64(x).map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(s) => Value::String(s.as_str().to_string()),
        AMQPValue::LongString(s) => Value::String(String::from_utf8_lossy(s.as_bytes()).into()),
        AMQPValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b.as_slice()).into()),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(json_value).collect()),
        AMQPValue::FieldTable(t) => Value::Object(json_table(t)),
        AMQPValue::Void => Value::Null,
    }
}

/// JSON headers as the AMQP table py-amqp would write (tags chosen from the Python type:
/// strings `S`, booleans `t`, integers `I` or `L`, floats `d`, null `V`).
fn field_table(map: &Map<String, Value>) -> FieldTable {
    let entries: BTreeMap<ShortString, AMQPValue> = map
        .iter()
        .map(|(k, v)| (ShortString::from(k.as_str()), amqp_value(v)))
        .collect();
    FieldTable::from(entries)
}

fn amqp_value(value: &Value) -> AMQPValue {
    match value {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => match i32::try_from(i) {
                Ok(small) => AMQPValue::LongInt(small),
                Err(_) => AMQPValue::LongLongInt(i),
            },
            (None, Some(x)) => AMQPValue::Double(x),
            (None, None) => AMQPValue::Void,
        },
        Value::String(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Array(items) => AMQPValue::FieldArray(FieldArray::from(
            items.iter().map(amqp_value).collect::<Vec<_>>(),
        )),
        Value::Object(map) => AMQPValue::FieldTable(field_table(map)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn vhost_spelling_follows_kombu() {
        assert_eq!(
            kombu_vhost("amqp://guest:guest@h:5672"),
            "amqp://guest:guest@h:5672/%2f"
        );
        assert_eq!(
            kombu_vhost("amqp://guest:guest@h:5672/"),
            "amqp://guest:guest@h:5672/%2f"
        );
        assert_eq!(kombu_vhost("amqp://h:5672/rstuf"), "amqp://h:5672/rstuf");
    }

    #[test]
    fn headers_survive_the_table_round_trip() {
        let headers = json!({"lang": "py", "id": "abc", "retries": 0, "eta": null,
            "timelimit": [null, null], "stamps": {}, "ignore_result": false,
            "group_index": 3_000_000_000_i64, "score": 1.5});
        let Value::Object(map) = headers.clone() else {
            unreachable!()
        };
        let table = field_table(&map);
        assert!(matches!(
            table.inner().get("retries"),
            Some(AMQPValue::LongInt(0))
        ));
        assert!(matches!(
            table.inner().get("group_index"),
            Some(AMQPValue::LongLongInt(3_000_000_000))
        ));
        assert!(matches!(
            table.inner().get("lang"),
            Some(AMQPValue::LongString(_))
        ));
        assert_eq!(Value::Object(json_table(&table)), headers);
    }
}

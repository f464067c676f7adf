//! The Celery broker on Redis, as kombu's Redis transport keeps it: queues are lists (`LPUSH` by producers, `BRPOP` by consumers, with kombu's priority
//! sub-queues), a delivered message is recorded in `unacked`/`unacked_index` until it is
//! acknowledged, and messages left there by a consumer that died are pushed back to their
//! queue after the visibility timeout, by us or by any Python worker sharing the broker.
//!
//! Also the result backend: `celery-task-meta-<id>` records written with `SETEX` and
//! `PUBLISH`, never over a stored SUCCESS.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rstuf_celery::MessageError;
use rstuf_celery::redis_envelope::{
    self, Envelope, UNACKED, UNACKED_INDEX, UNACKED_MUTEX, parse_unacked, queue_keys,
};
use rstuf_celery::result::{self, RESULT_TTL_SECS, Record};
use rstuf_consumer::{Broker, Received, ResultBackend};
use rstuf_engine::ports::{PortError, PortErrorKind};

use crate::coalesce::Coalescer;
use crate::redis_settings::redis_error;

/// The `status` of the JSON record in `stored` (false when there is none or it is not one).
const STORED_STATUS: &str = r"
local function stored_status(stored)
    if not stored then
        return false
    end
    local ok, record = pcall(cjson.decode, stored)
    if ok and type(record) == 'table' and type(record.status) == 'string' then
        return record.status
    end
    return false
end
";

/// Writes PRE_RUN (plain `SET`) unless the stored record is a SUCCESS; returns the status that
/// was stored. One round trip instead of a read and a write.
const PRE_RUN: &str = r"
local status = stored_status(redis.call('get', KEYS[1]))
if status ~= 'SUCCESS' then
    redis.call('set', KEYS[1], ARGV[1])
end
return status";

/// For each record key `KEYS[i]`: `SETEX` (`ARGV[1]` seconds) and `PUBLISH` the record
/// `ARGV[i + 1]` unless the stored record is a SUCCESS. Returns the status that was stored
/// for each (nil for none).
const STORE: &str = r"
local before = {}
for i = 1, #KEYS do
    local status = stored_status(redis.call('get', KEYS[i]))
    if status ~= 'SUCCESS' then
        redis.call('setex', KEYS[i], ARGV[1], ARGV[i + 1])
        redis.call('publish', KEYS[i], ARGV[i + 1])
    end
    before[i] = status
end
return before";

/// The most result records written by one script call.
const STORE_BATCH: usize = 256;
/// The most acknowledgements sent in one transaction.
const ACK_BATCH: usize = 512;

/// Takes up to `ARGV[2]` messages, first from this consumer's processing list (`KEYS[3]`,
/// where a blocking `BLMOVE` put them), then from the queue keys (`KEYS[4..]`, in `BRPOP`'s
/// order), and records each whose delivery tag it can read in `unacked`/`unacked_index` with
/// the value kombu writes (`[message, "", routing key]`), at time `ARGV[1]`: the move out of
/// a list and the record are one atomic step, so no message is ever in neither. Returns
/// `{queue key, message, tag recorded or ''}` for each one taken.
const TAKE: &str = r#"
local now = ARGV[1]
local taken = {}
for _ = 1, tonumber(ARGV[2]) do
    local key, message
    for i = 3, #KEYS do
        message = redis.call('rpop', KEYS[i])
        if message then
            key = KEYS[i]
            break
        end
    end
    if not message then
        break
    end
    local recorded = ''
    local routing_key
    local ok, decoded = pcall(cjson.decode, message)
    if ok and type(decoded) == 'table' and type(decoded.properties) == 'table' then
        local properties = decoded.properties
        local tag = properties.delivery_tag
        local info = properties.delivery_info
        routing_key = type(info) == 'table' and info.routing_key
        if type(routing_key) ~= 'string' then
            routing_key = nil
        end
        if key ~= KEYS[3] then
            routing_key = routing_key or string.match(key, '^(.-)\6\22') or key
        end
        if type(tag) == 'string' and routing_key then
            redis.call('zadd', KEYS[2], now, tag)
            redis.call('hset', KEYS[1], tag,
                '[' .. message .. ', "", ' .. cjson.encode(routing_key) .. ']')
            recorded = tag
        end
    end
    if key == KEYS[3] then
        key = routing_key or KEYS[4]
    end
    taken[#taken + 1] = {key, message, recorded}
end
return taken"#;

/// Refreshes this consumer's liveness (`KEYS[1]` for `ARGV[1]` ms, registered in `KEYS[2]`
/// as `ARGV[2]`; with `ARGV[1]` = `0` it is removed instead: the consumer is closing), then
/// moves the processing list of every registered consumer whose liveness
/// lapsed (it died between a `BLMOVE` and its take) back to the consuming end of each
/// message's queue (its routing key; `ARGV[3]` when unreadable), and forgets that consumer.
/// `ARGV[4]` and `ARGV[5]` are the liveness and processing key prefixes. Returns how many
/// messages it moved.
const RESTORE_PROCESSING: &str = r#"
if ARGV[1] == '0' then
    redis.call('del', KEYS[1])
else
    redis.call('set', KEYS[1], '1', 'PX', ARGV[1])
end
redis.call('sadd', KEYS[2], ARGV[2])
local moved = 0
for _, id in ipairs(redis.call('smembers', KEYS[2])) do
    if redis.call('exists', ARGV[4] .. id) == 0 then
        local list = ARGV[5] .. id
        while true do
            local message = redis.call('rpop', list)
            if not message then
                break
            end
            local queue = ARGV[3]
            local ok, decoded = pcall(cjson.decode, message)
            if ok and type(decoded) == 'table' and type(decoded.properties) == 'table'
                and type(decoded.properties.delivery_info) == 'table'
                and type(decoded.properties.delivery_info.routing_key) == 'string' then
                queue = decoded.properties.delivery_info.routing_key
            end
            redis.call('rpush', queue, message)
            moved = moved + 1
        end
        redis.call('srem', KEYS[2], id)
    end
end
return moved"#;

/// How long our hold on `unacked_mutex` lasts (kombu holds it up to 300 s). A consumer killed
/// while restoring must not stop every restore for minutes; a second restorer running once
/// it lapsed is harmless, since each message is restored by one atomic script.
const RESTORE_MUTEX_MS: u64 = 5_000;

/// A consumer's liveness key is this prefix and its id.
const ALIVE_PREFIX: &str = "rstuf-worker:alive:";
/// A consumer's processing list is this prefix and its id.
const PROCESSING_PREFIX: &str = "rstuf-worker:processing:";

/// The set of Rust consumers that may hold messages in a processing list.
pub const CONSUMERS: &str = "rstuf-worker:consumers";

/// Moves an unacknowledged message back to its queue if it is still unacknowledged.
const RESTORE: &str = r"
local removed = redis.call('hdel', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
if removed == 1 and ARGV[3] ~= '' then
    redis.call('rpush', ARGV[2], ARGV[3])
end
return removed";

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A popped list element as a delivery: a task message, or a malformed one (removed for good).
fn accept(key: &str, bytes: &[u8]) -> Received<Envelope> {
    let queue = key
        .split(redis_envelope::PRIORITY_SEP)
        .next()
        .unwrap_or(key)
        .to_string();
    let envelope = match Envelope::parse(bytes) {
        Ok(envelope) => envelope,
        Err(error) => {
            let task_id = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .and_then(|v| v.get("headers")?.get("id")?.as_str().map(String::from));
            return Received::Malformed {
                queue,
                error,
                task_id,
            };
        }
    };
    if envelope.delivery_tag().is_none() {
        return Received::Malformed {
            queue,
            error: MessageError::Envelope("no delivery tag".into()),
            task_id: Some(envelope.message.id.clone()),
        };
    }
    let message = envelope.message.clone();
    Received::Task {
        message,
        queue,
        handle: envelope,
    }
}

/// A consumer and producer on the Redis broker.
#[derive(Clone)]
pub struct RedisBroker {
    /// For blocking moves only, one per queue (a `BLMOVE` holds its connection).
    block: Vec<ConnectionManager>,
    conn: ConnectionManager,
    take: Arc<redis::Script>,
    /// Acknowledgements of concurrent tasks, sent together (delivery tags).
    acks: Coalescer<String, ()>,
    queues: Vec<String>,
    keys: Vec<String>,
    /// Deliveries older than this, neither acknowledged nor touched, are restored by
    /// [`Broker::maintain`].
    visibility: Duration,
    /// This consumer's id: its processing list and liveness key.
    id: String,
}

debug_fields!(RedisBroker { queues });

/// kombu's default visibility timeout (an hour).
pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(3600);

/// How long one blocking move (`BLMOVE`) waits before the consumer loop gets control back.
/// Short, so a stopping consumer gets control back at once; an idle consumer sends a few
/// cheap blocking commands a second.
pub const POP_TIMEOUT: Duration = Duration::from_millis(250);

impl RedisBroker {
    /// Connects to the broker at `url` (`RSTUF_BROKER_SERVER`) to consume `queues`; the
    /// connections reconnect by themselves when Redis restarts.
    pub async fn connect(url: &str, queues: &[&str]) -> Result<Self, PortError> {
        let client = redis::Client::open(url).map_err(|e| redis_error("broker URL", e))?;
        let pop_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(POP_TIMEOUT + Duration::from_secs(5)));
        let mut block = Vec::with_capacity(queues.len());
        for _ in queues {
            let conn = client
                .get_connection_manager_with_config(pop_config.clone())
                .await
                .map_err(|e| redis_error("connecting to the broker", e))?;
            block.push(conn);
        }
        let conn = client
            .get_connection_manager()
            .await
            .map_err(|e| redis_error("connecting to the broker", e))?;
        let keys = queues.iter().flat_map(|q| queue_keys(q)).collect();
        let ack_conn = conn.clone();
        let acks = Coalescer::spawn(ACK_BATCH, move |tags: Vec<String>| {
            let mut conn = ack_conn.clone();
            async move {
                let count = tags.len();
                forget_all(&mut conn, &tags).await?;
                Ok(vec![(); count])
            }
        });
        Ok(RedisBroker {
            block,
            conn,
            take: Arc::new(redis::Script::new(TAKE)),
            acks,
            queues: queues.iter().map(|q| q.to_string()).collect(),
            keys,
            visibility: DEFAULT_VISIBILITY,
            id: uuid::Uuid::new_v4().simple().to_string(),
        })
    }

    /// The visibility timeout [`Broker::maintain`] restores deliveries after.
    pub fn with_visibility(mut self, visibility: Duration) -> Self {
        self.visibility = visibility;
        self
    }

    /// Keeps this consumer registered as alive (for longer than housekeeping runs) and moves
    /// the processing lists of consumers that died back to their queues; `closing` ends this
    /// consumer's registration and hands back its own. Returns how many messages moved.
    async fn restore_processing(&self, closing: bool) -> Result<usize, PortError> {
        let ttl = if closing {
            0
        } else {
            // Redis takes at most a signed 64-bit count of milliseconds.
            let ms = self.visibility.max(Duration::from_secs(5)).as_millis();
            u64::try_from(ms)
                .unwrap_or(u64::MAX)
                .min(i64::MAX as u64 / 2)
        };
        let mut conn = self.conn.clone();
        let moved: usize = redis::Script::new(RESTORE_PROCESSING)
            .key(format!("{ALIVE_PREFIX}{}", self.id))
            .key(CONSUMERS)
            .arg(ttl)
            .arg(&self.id)
            .arg(&self.queues[0])
            .arg(ALIVE_PREFIX)
            .arg(PROCESSING_PREFIX)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("restoring processing lists", e))?;
        Ok(moved)
    }

    /// Declares the queues as kombu does (the binding set members) and registers this
    /// consumer as alive.
    pub async fn declare(&self) -> Result<(), PortError> {
        let mut conn = self.conn.clone();
        for queue in &self.queues {
            let (key, member) = redis_envelope::binding(queue);
            let _: i64 = redis::cmd("SADD")
                .arg(&key)
                .arg(&member)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error("declaring the queue", e))?;
        }
        self.restore_processing(false).await?;
        Ok(())
    }

    /// Waits up to [`POP_TIMEOUT`] for the next message of any queue (plain queues before
    /// their priority sub-queues, as kombu orders them) and records it as unacknowledged. A
    /// list element that is not a usable message is removed and reported as
    /// [`Received::Malformed`], never retried.
    pub async fn next(&self) -> Result<Option<Received<Envelope>>, PortError> {
        Ok(self.next_batch(1).await?.into_iter().next())
    }

    /// Up to `max` messages, each moved out of its list and recorded as unacknowledged in
    /// one atomic step (no message is ever popped without its record, so a consumer killed
    /// at any point loses none). When none is waiting, waits up to [`POP_TIMEOUT`] with a
    /// blocking `BLMOVE` of each queue into this consumer's processing list, which the
    /// housekeeping of any Rust consumer restores if this one dies. Empty after
    /// [`POP_TIMEOUT`] without a message.
    pub async fn next_batch(&self, max: usize) -> Result<Vec<Received<Envelope>>, PortError> {
        let taken = self.take(max).await?;
        if !taken.is_empty() {
            return Ok(taken);
        }
        self.wait_for_message().await?;
        self.take(max).await
    }

    /// The processing list, where a blocking move puts a message before it is taken.
    fn processing(&self) -> String {
        format!("{PROCESSING_PREFIX}{}", self.id)
    }

    /// Blocks until one queue had a message (moved into the processing list) or
    /// [`POP_TIMEOUT`] passed. A move still waiting on another queue when one succeeds may
    /// complete later: its message waits in the processing list for the next take.
    async fn wait_for_message(&self) -> Result<(), PortError> {
        let mut moves = tokio::task::JoinSet::new();
        for (queue, conn) in self.queues.iter().zip(&self.block) {
            let (queue, mut conn, processing) = (queue.clone(), conn.clone(), self.processing());
            moves.spawn(async move {
                let moved: Option<Vec<u8>> = redis::cmd("BLMOVE")
                    .arg(&queue)
                    .arg(&processing)
                    .arg("RIGHT")
                    .arg("LEFT")
                    .arg(POP_TIMEOUT.as_secs_f64())
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| redis_error("waiting for a message", e))?;
                Ok::<bool, PortError>(moved.is_some())
            });
        }
        // The first to end decides: a message moved, or the wait is over (the others end
        // within the same timeout; what they move waits in the processing list).
        match moves.join_next().await {
            Some(Ok(Ok(_))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(PortError::new(PortErrorKind::Other, e.to_string())),
        }
    }

    /// Takes and records up to `max` waiting messages (the processing list first).
    async fn take(&self, max: usize) -> Result<Vec<Received<Envelope>>, PortError> {
        let mut conn = self.conn.clone();
        let taken: Vec<(String, Vec<u8>, String)> = self
            .take
            .key(UNACKED)
            .key(UNACKED_INDEX)
            .key(self.processing())
            .key(&self.keys)
            .arg(now_secs())
            .arg(max.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("taking messages", e))?;
        let mut received = Vec::with_capacity(taken.len());
        for (key, bytes, recorded) in taken {
            let message = accept(&key, &bytes);
            match (&message, !recorded.is_empty()) {
                // Recorded by the script, which found a delivery tag, but not a task message
                // after all: its record goes, or a Python worker would restore it forever.
                (Received::Malformed { .. }, true) => self.forget(&recorded).await?,
                // A message the script could not read (its JSON library is stricter about
                // nesting than ours): recorded here instead.
                (Received::Task { handle, queue, .. }, false) => {
                    self.record(handle, queue).await?;
                }
                _ => {}
            }
            received.push(message);
        }
        Ok(received)
    }

    async fn record(&self, envelope: &Envelope, queue: &str) -> Result<(), PortError> {
        let Some(tag) = envelope.delivery_tag() else {
            return Ok(());
        };
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(UNACKED_INDEX)
            .arg(now_secs())
            .arg(tag)
            .ignore()
            .cmd("HSET")
            .arg(UNACKED)
            .arg(tag)
            .arg(envelope.unacked_value(queue))
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error("recording the delivery", e))?;
        Ok(())
    }

    async fn forget(&self, tag: &str) -> Result<(), PortError> {
        forget_all(&mut self.conn.clone(), &[tag]).await
    }

    /// Acknowledges a delivered message: it is done and is never delivered again. The
    /// acknowledgements of concurrent tasks go together in one transaction.
    pub async fn ack(&self, envelope: &Envelope) -> Result<(), PortError> {
        match envelope.delivery_tag() {
            Some(tag) => self.acks.call(tag.to_string()).await,
            None => Ok(()),
        }
    }

    /// Marks a delivered message as still being worked on, so no consumer restores it while
    /// it runs (kombu restores by the delivery time; the score is that time).
    pub async fn touch(&self, envelope: &Envelope) -> Result<(), PortError> {
        let Some(tag) = envelope.delivery_tag() else {
            return Ok(());
        };
        let mut conn = self.conn.clone();
        let _: i64 = redis::cmd("ZADD")
            .arg(UNACKED_INDEX)
            .arg("XX")
            .arg(now_secs())
            .arg(tag)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error("refreshing a delivery", e))?;
        Ok(())
    }

    /// Hands a delivered message back (a worker shutting down before running it): pushed to
    /// the consuming end of its queue, so it is the next delivered, as kombu restores.
    pub async fn hand_back(&self, envelope: &Envelope) -> Result<(), PortError> {
        let queue = envelope
            .routing_key()
            .unwrap_or(&self.queues[0])
            .to_string();
        let tag = envelope.delivery_tag().unwrap_or_default().to_string();
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .atomic()
            .cmd("RPUSH")
            .arg(&queue)
            .arg(envelope.redelivered())
            .ignore()
            .cmd("ZREM")
            .arg(UNACKED_INDEX)
            .arg(&tag)
            .ignore()
            .cmd("HDEL")
            .arg(UNACKED)
            .arg(&tag)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error("handing a message back", e))?;
        Ok(())
    }

    /// Sends a message to `queue`, as kombu publishes (binding, then `LPUSH`).
    pub async fn publish(&self, envelope: &Envelope, queue: &str) -> Result<(), PortError> {
        let (key, member) = redis_envelope::binding(queue);
        let mut conn = self.conn.clone();
        let _: () = redis::pipe()
            .cmd("SADD")
            .arg(&key)
            .arg(&member)
            .ignore()
            .cmd("LPUSH")
            .arg(queue)
            .arg(envelope.to_bytes())
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error("publishing a message", e))?;
        Ok(())
    }

    /// Pushes back to their queues the messages delivered more than `visibility` ago and
    /// never acknowledged (their consumer died), under kombu's `unacked_mutex` so Python
    /// workers doing the same never restore a message twice. Returns how many.
    pub async fn restore_unacked(&self, visibility: Duration) -> Result<usize, PortError> {
        let mut conn = self.conn.clone();
        let token = uuid::Uuid::new_v4().simple().to_string();
        let taken: Option<String> = redis::cmd("SET")
            .arg(UNACKED_MUTEX)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(RESTORE_MUTEX_MS)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error("taking the restore mutex", e))?;
        if taken.is_none() {
            return Ok(0);
        }
        let result = self.restore_locked(visibility).await;
        let _: Result<i64, _> = redis::Script::new(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
        )
        .key(UNACKED_MUTEX)
        .arg(&token)
        .invoke_async(&mut conn)
        .await;
        result
    }

    async fn restore_locked(&self, visibility: Duration) -> Result<usize, PortError> {
        let mut conn = self.conn.clone();
        let ceiling = now_secs() - visibility.as_secs_f64();
        let tags: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(UNACKED_INDEX)
            .arg(0)
            .arg(ceiling)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error("listing unacknowledged messages", e))?;
        let mut restored = 0;
        for tag in tags {
            let value: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(UNACKED)
                .arg(&tag)
                .query_async(&mut conn)
                .await
                .map_err(|e| redis_error("reading an unacknowledged message", e))?;
            // Removed and pushed back in one step, only if still unacknowledged: a consumer
            // acknowledging it meanwhile wins, and the message is not delivered twice. A
            // value that cannot be parsed is dropped: it could never be delivered.
            let requeue = value.as_deref().and_then(|v| parse_unacked(v).ok());
            let (queue, bytes) = requeue
                .map(|(envelope, queue)| (queue, envelope.redelivered()))
                .unwrap_or_default();
            let moved: i64 = redis::Script::new(RESTORE)
                .key(UNACKED)
                .key(UNACKED_INDEX)
                .arg(&tag)
                .arg(&queue)
                .arg(&bytes)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis_error("restoring a message", e))?;
            if moved == 1 && !bytes.is_empty() {
                restored += 1;
            }
        }
        Ok(restored)
    }
}

/// Removes the unacknowledged records of `tags` (kombu's acknowledgement), in one transaction.
async fn forget_all<T: AsRef<str>>(
    conn: &mut ConnectionManager,
    tags: &[T],
) -> Result<(), PortError> {
    let tags: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
    let _: () = redis::pipe()
        .atomic()
        .cmd("ZREM")
        .arg(UNACKED_INDEX)
        .arg(&tags)
        .ignore()
        .cmd("HDEL")
        .arg(UNACKED)
        .arg(&tags)
        .ignore()
        .query_async(conn)
        .await
        .map_err(|e| redis_error("acknowledging a message", e))?;
    Ok(())
}

#[async_trait]
impl Broker for RedisBroker {
    type Handle = Envelope;
    async fn next_batch(&self, max: usize) -> Result<Vec<Received<Envelope>>, PortError> {
        RedisBroker::next_batch(self, max).await
    }
    async fn ack(&self, handle: &Envelope) -> Result<(), PortError> {
        RedisBroker::ack(self, handle).await
    }
    async fn hand_back(&self, handle: &Envelope) -> Result<(), PortError> {
        RedisBroker::hand_back(self, handle).await
    }
    async fn touch(&self, handle: &Envelope) -> Result<(), PortError> {
        RedisBroker::touch(self, handle).await
    }
    async fn maintain(&self) -> Result<usize, PortError> {
        let moved = self.restore_processing(false).await?;
        Ok(moved + self.restore_unacked(self.visibility).await?)
    }
    async fn close(&self) -> Result<(), PortError> {
        self.restore_processing(true).await.map(|_| ())
    }
}

/// The Celery result backend on Redis.
#[derive(Clone)]
pub struct RedisResults {
    conn: ConnectionManager,
    pre_run: Arc<redis::Script>,
    /// Records of concurrent tasks, written together ([`STORE`]).
    store: Coalescer<(String, Vec<u8>), Option<String>>,
}

debug_fields!(RedisResults {});

impl RedisResults {
    /// Connects to the result database (`<RSTUF_REDIS_SERVER>:<port>/<RSTUF_REDIS_SERVER_DB_RESULT>`).
    pub async fn connect(url: &str) -> Result<Self, PortError> {
        let conn = crate::redis_settings::connection(url, "the result backend").await?;
        let script = Arc::new(redis::Script::new(&format!("{STORED_STATUS}{STORE}")));
        let store_conn = conn.clone();
        let store = Coalescer::spawn(STORE_BATCH, move |records: Vec<(String, Vec<u8>)>| {
            let mut conn = store_conn.clone();
            let script = script.clone();
            async move {
                let mut invocation = script.prepare_invoke();
                invocation.arg(RESULT_TTL_SECS);
                for (key, record) in records {
                    invocation.key(key).arg(record);
                }
                invocation
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis_error("writing a task result", e))
            }
        });
        Ok(RedisResults {
            conn,
            pre_run: Arc::new(redis::Script::new(&format!("{STORED_STATUS}{PRE_RUN}"))),
            store,
        })
    }
}

#[async_trait]
impl ResultBackend for RedisResults {
    async fn state(&self, task_id: &str) -> Result<Option<String>, PortError> {
        let mut conn = self.conn.clone();
        let stored: Option<Vec<u8>> = redis::cmd("GET")
            .arg(result::result_key(task_id))
            .query_async(&mut conn)
            .await
            .map_err(|e| redis_error("reading a task result", e))?;
        Ok(stored.and_then(|bytes| {
            let value: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            Some(value.get("status")?.as_str()?.to_string())
        }))
    }

    /// PRE_RUN, as the reference worker's signal handler writes it: plain `SET`, no expiry;
    /// not over a stored SUCCESS. Returns the state that was stored, if any (one round trip
    /// for what `state` and the write would take two).
    async fn pre_run(&self, task_id: &str) -> Result<Option<String>, PortError> {
        let mut conn = self.conn.clone();
        self.pre_run
            .key(result::result_key(task_id))
            .arg(result::pre_run(task_id))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| redis_error("writing a task result", e))
    }

    /// Stores a state record (`SETEX` 1 day and `PUBLISH`), unless the stored record is a
    /// SUCCESS, returning the state that was stored, if any: a task that starts at once
    /// stores STARTED and learns whether it already succeeded (a redelivery) in one round
    /// trip. (Its PRE_RUN record, optional, would be overwritten at once.)
    ///
    /// Records stored by concurrent tasks while one script call is on its way go together in
    /// the next ([`Coalescer`]).
    async fn replace(&self, record: &Record) -> Result<Option<String>, PortError> {
        self.store
            .call((result::result_key(&record.task_id), record.to_bytes()))
            .await
    }
}

//! Requests of many concurrent tasks sent as one: while one batch is on its way to the
//! service, the requests that arrive wait, and go together in the next. A lone request goes at
//! once (no timer, no added latency when the worker is quiet); under load the batches grow by
//! themselves, so a round of group publishing that answers 300 tasks writes their 300 result
//! records in a few round trips instead of 300.

use std::future::Future;

use rstuf_engine::ports::{PortError, PortErrorKind};
use tokio::sync::{mpsc, oneshot};

type Reply<R> = oneshot::Sender<Result<R, PortError>>;

/// A handle to one batching loop; clones share it. The loop ends with the last handle.
#[derive(Debug)]
pub struct Coalescer<Q, R> {
    tx: mpsc::UnboundedSender<(Q, Reply<R>)>,
}

impl<Q, R> Clone for Coalescer<Q, R> {
    fn clone(&self) -> Self {
        Coalescer {
            tx: self.tx.clone(),
        }
    }
}

impl<Q: Send + 'static, R: Send + 'static> Coalescer<Q, R> {
    /// Starts the loop on the current Tokio runtime: it sends at most `max` requests at a time
    /// with `send`, which answers each request in order (or fails them all).
    pub fn spawn<F, Fut>(max: usize, send: F) -> Self
    where
        F: Fn(Vec<Q>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<R>, PortError>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Q, Reply<R>)>();
        let max = max.max(1);
        tokio::spawn(async move {
            let mut waiting = Vec::with_capacity(max);
            while rx.recv_many(&mut waiting, max).await > 0 {
                let (requests, replies): (Vec<Q>, Vec<Reply<R>>) = waiting.drain(..).unzip();
                let count = requests.len();
                match send(requests).await {
                    Ok(answers) if answers.len() == count => {
                        for (reply, answer) in replies.into_iter().zip(answers) {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                    Ok(answers) => {
                        let e = PortError::new(
                            PortErrorKind::Other,
                            format!("{} answers to {count} requests", answers.len()),
                        );
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                    Err(e) => {
                        for reply in replies {
                            let _ = reply.send(Err(e.clone()));
                        }
                    }
                }
            }
        });
        Coalescer { tx }
    }

    /// Sends `request` with the others waiting and returns its answer.
    pub async fn call(&self, request: Q) -> Result<R, PortError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || PortError::new(PortErrorKind::Other, "the batching loop stopped");
        self.tx.send((request, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_wait_go_together_and_each_gets_its_own_answer() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubler = Coalescer::spawn(16, move |batch: Vec<u32>| {
            seen.lock().unwrap().push(batch.len());
            async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(batch.into_iter().map(|n| n * 2).collect())
            }
        });
        // A lone request goes at once, alone.
        assert_eq!(doubler.call(1).await.unwrap(), 2);
        // 40 at once: the first batch takes what has arrived, the rest wait for it.
        let calls: Vec<_> = (0..40u32)
            .map(|n| {
                let d = doubler.clone();
                tokio::spawn(async move { (n, d.call(n).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (n, doubled) = call.await.unwrap();
            assert_eq!(doubled, n * 2);
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes[0], 1);
        assert_eq!(sizes[1..].iter().sum::<usize>(), 40);
        assert!(sizes.iter().all(|&s| s <= 16), "{sizes:?}");
        // How the 40 split depends on when each task gets to run (a loaded machine lets a few
        // go alone first), but while a batch is on its way the others must pile up: some batch
        // is full, and there are far fewer batches than requests.
        assert!(sizes.contains(&16), "no full batch: {sizes:?}");
        assert!(sizes.len() <= 1 + 40 / 4, "batches: {sizes:?}");
    }

    #[tokio::test]
    async fn a_failed_or_short_batch_fails_every_request_in_it() {
        let failing = Coalescer::spawn(8, |_batch: Vec<u32>| async {
            Err::<Vec<u32>, _>(PortError::new(PortErrorKind::Transient, "down"))
        });
        let e = failing.call(1).await.unwrap_err();
        assert_eq!(e.kind, PortErrorKind::Transient);
        let short = Coalescer::spawn(8, |_batch: Vec<u32>| async { Ok(Vec::<u32>::new()) });
        assert!(
            short
                .call(1)
                .await
                .unwrap_err()
                .message
                .contains("0 answers")
        );
    }
}

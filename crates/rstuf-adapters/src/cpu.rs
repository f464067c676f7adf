//! The engine's CPU jobs on tokio's blocking threads.

use async_trait::async_trait;
use rstuf_engine::ports::{Cpu, CpuJob, PortError, PortErrorKind};

/// Runs each job on a tokio blocking thread; the engine runs [`Cpu::parallelism`] at once.
#[derive(Debug, Clone, Copy)]
pub struct BlockingPool {
    parallelism: usize,
}

impl BlockingPool {
    /// As many jobs at once as the machine has cores.
    pub fn new() -> Self {
        BlockingPool {
            parallelism: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }
}

impl Default for BlockingPool {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Cpu for BlockingPool {
    fn parallelism(&self) -> usize {
        self.parallelism
    }

    async fn run(&self, job: CpuJob) -> Result<(), PortError> {
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| PortError::caused(PortErrorKind::Other, "CPU job failed", e))
    }
}

//! A stage started on its own task: every stage crate's `start` returns one,
//! and the binary's stage commands, the in-process pipeline and the tests
//! all stop stages the same way.

use std::future::Future;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Why a stage ended with an error.
pub type StageFailure = Box<dyn std::error::Error + Send + Sync>;

/// A stage running on its own task until [`Running::stop`].
pub struct Running {
    what: &'static str,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<Result<(), StageFailure>>>,
}

impl Running {
    /// Spawns `run`, handing it the future that completes on [`Running::stop`].
    pub fn spawn<F, E>(
        what: &'static str,
        run: impl FnOnce(WaitForCancellationFutureOwned) -> F,
    ) -> Self
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let stop = CancellationToken::new();
        let run = run(stop.clone().cancelled_owned());
        let task = tokio::spawn(async move { run.await.map_err(|e| Box::new(e) as StageFailure) });
        Self {
            what,
            stop,
            task: Some(task),
        }
    }

    /// The stage's name.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Completes when the stage ends on its own (it failed, or its shutdown
    /// came some other way), with how it ended; pending forever after that.
    pub async fn ended(&mut self) -> Result<(), StageFailure> {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = task.await;
        self.task = None;
        joined(self.what, outcome)
    }

    /// Asks the stage to stop (it finishes the work in hand) and waits until
    /// it has.
    pub async fn stop(mut self) -> Result<(), StageFailure> {
        self.stop.cancel();
        match self.task.take() {
            Some(task) => joined(self.what, task.await),
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A stage dropped without being stopped stops too, rather than run on
        // unowned.
        self.stop.cancel();
    }
}

fn joined(
    what: &'static str,
    outcome: Result<Result<(), StageFailure>, tokio::task::JoinError>,
) -> Result<(), StageFailure> {
    match outcome {
        Ok(ended) => ended.map_err(|e| format!("{what}: {e}").into()),
        Err(e) => Err(format!("{what} task failed: {e}").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("broke")]
    struct Broke;

    #[tokio::test]
    async fn stop_waits_for_the_stage_to_finish_its_work() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stage = Running::spawn("test", |stop| async move {
            stop.await;
            // Work after the stop request is still waited for.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let _ = tx.send(());
            Ok::<_, Broke>(())
        });
        stage.stop().await.unwrap();
        rx.await.unwrap();
    }

    #[tokio::test]
    async fn a_stage_that_fails_says_so_with_its_name() {
        let mut stage = Running::spawn("rasterizer", |_stop| async { Err::<(), _>(Broke) });
        let e = stage.ended().await.unwrap_err();
        assert_eq!(e.to_string(), "rasterizer: broke");
        // Ended already: stopping it is fine.
        stage.stop().await.unwrap();
    }
}

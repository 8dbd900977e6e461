//! One service's task on the "checks" thread: a round of its checks every interval, the
//! state machine fed with the verdict, a [`ServiceEvent`] on each change of state and the
//! [`ServiceStatus`] kept current for `show services`.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use tokio::{
    sync::{Semaphore, mpsc, watch},
    time::MissedTickBehavior,
};

use super::{
    check::{Check, CheckError, run_check},
    state::{Announce, LatencyHistogram, Phase, ServiceMachine},
};

/// What the event loop hears from the checks: only changes of state (rare: bounded by
/// rise, fall and hold-down), so the channel is unbounded.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceEvent {
    Transition {
        name: Arc<str>,
        /// The task that sent it; the event loop drops events from a task a reload replaced.
        generation: u64,
        from: Phase,
        to: Phase,
        announce: Announce,
        /// The first failing check, when a failure caused the change.
        cause: Option<CheckFailure>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckFailure {
    /// Its index in `service[N].check`.
    pub index: usize,
    /// What it checks ("http http://127.0.0.1:8080/health").
    pub check: String,
    pub error: CheckError,
}

/// The last result of one check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckStatus {
    pub check: String,
    pub last: Option<Result<(), CheckError>>,
    pub latency: Option<Duration>,
}

/// A service as `show services` reads it (never waiting on a check).
#[derive(Clone, Debug)]
pub struct ServiceStatus {
    pub machine: ServiceMachine,
    /// Wall-clock time of the last change of state.
    pub since: SystemTime,
    pub checks: Vec<CheckStatus>,
    pub latency: LatencyHistogram,
    pub rounds: u64,
}

impl ServiceStatus {
    pub fn new(machine: ServiceMachine, checks: &[Check]) -> Self {
        ServiceStatus {
            machine,
            since: SystemTime::now(),
            checks: checks
                .iter()
                .map(|check| CheckStatus {
                    check: check.to_string(),
                    last: None,
                    latency: None,
                })
                .collect(),
            latency: LatencyHistogram::default(),
            rounds: 0,
        }
    }
}

/// Everything a service's task runs with.
pub struct Task {
    pub name: Arc<str>,
    pub generation: u64,
    pub checks: Vec<Check>,
    pub interval: Duration,
    pub timeout: Duration,
    pub machine: ServiceMachine,
    pub status: watch::Sender<ServiceStatus>,
    pub events: mpsc::UnboundedSender<ServiceEvent>,
    pub exec_slots: Arc<Semaphore>,
}

impl Task {
    pub async fn run(mut self) {
        // Spread services over the interval: a thousand of them do not all connect at once.
        // After a planned restart, the first round goes at once: its verdict is awaited
        // before End-of-RIB (see `daemon/services.rs`).
        let offset = if self.machine.is_resuming() {
            Duration::ZERO
        } else {
            self.interval.mul_f64(rand::random::<f64>())
        };
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + offset, self.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let deadline = self.machine.deadline();
            tokio::select! {
                _ = ticker.tick() => self.round().await,
                () = sleep_until(deadline), if deadline.is_some() => {
                    let transition = self.machine.on_timer(Instant::now());
                    self.report(transition.map(|t| (t, None)));
                }
            }
        }
    }

    async fn round(&mut self) {
        let results = futures::future::join_all(
            self.checks
                .iter()
                .map(|check| run_check(check, self.timeout, &self.exec_slots)),
        )
        .await;
        let cause = results.iter().enumerate().find_map(|(index, result)| {
            let error = result.outcome.clone().err()?;
            Some(CheckFailure {
                index,
                check: self.checks[index].to_string(),
                error,
            })
        });
        let transition = self.machine.on_result(Instant::now(), cause.is_none());
        self.status.send_modify(|status| {
            status.rounds += 1;
            for (slot, result) in status.checks.iter_mut().zip(&results) {
                slot.last = Some(result.outcome.clone());
                slot.latency = Some(result.latency);
                status.latency.record(result.latency);
            }
        });
        self.report(transition.map(|t| (t, cause)));
    }

    fn report(&mut self, change: Option<(super::state::Transition, Option<CheckFailure>)>) {
        let Some((transition, cause)) = change else {
            return;
        };
        let machine = self.machine.clone();
        self.status.send_modify(|status| {
            status.machine = machine;
            status.since = SystemTime::now();
        });
        let _ = self.events.send(ServiceEvent::Transition {
            name: self.name.clone(),
            generation: self.generation,
            from: transition.from,
            to: transition.to,
            announce: transition.announce,
            cause,
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

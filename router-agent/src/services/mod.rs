//! Health-checked anycast services (`[[service]]`): each service's checks run on the
//! "checks" thread (a current-thread runtime, one task per service), off the BGP event loop;
//! the loop hears only changes of state ([`ServiceEvent`]) and reads each service's
//! [`ServiceStatus`] for `show services` without waiting on a check.

pub mod check;
pub mod config;
pub mod dns;
pub mod error;
pub mod exec;
pub mod http;
pub mod runner;
pub mod show;
pub mod state;
pub mod tcp;
#[cfg(feature = "https")]
pub mod tls;

use std::{collections::BTreeMap, io, sync::Arc, time::Instant};

use tokio::{
    sync::{Semaphore, mpsc, oneshot, watch},
    task::AbortHandle,
};

pub use config::ServiceConfig;
pub use runner::{CheckFailure, ServiceEvent, ServiceStatus};
pub use state::{Announce, Phase};

use check::Check;
use state::{ServiceMachine, Thresholds};

/// At most this many exec checks run at once, whatever the number of services.
pub const EXEC_SLOTS: usize = 32;

/// One running service.
struct Running {
    config: ServiceConfig,
    generation: u64,
    task: AbortHandle,
    status: watch::Receiver<ServiceStatus>,
}

/// What [`ServiceSet::apply`] did to one service, for the event loop to act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// New: starts in Init, nothing announced until it passes.
    Added(Arc<str>),
    /// Its config changed: a new task in the current state; announce again with the new
    /// settings (prefixes, communities) in that state.
    Changed(Arc<str>),
    /// Gone: withdraw (and unassign) with its last config.
    Removed(Arc<str>, Box<ServiceConfig>),
}

/// The daemon's handle on the services and their thread.
pub struct ServiceSet {
    runtime: tokio::runtime::Handle,
    /// Dropped: the thread's runtime ends, and every task and check with it.
    _stop: oneshot::Sender<()>,
    events: mpsc::UnboundedSender<ServiceEvent>,
    exec_slots: Arc<Semaphore>,
    services: BTreeMap<Arc<str>, Running>,
    next_generation: u64,
    /// The next `apply` starts its services resuming (planned restart).
    resuming: bool,
}

impl ServiceSet {
    /// Starts the "checks" thread (with no service yet).
    pub fn start(events: mpsc::UnboundedSender<ServiceEvent>) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("checks".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(ServiceSet {
            runtime: handle,
            _stop: stop,
            events,
            exec_slots: Arc::new(Semaphore::new(EXEC_SLOTS)),
            services: BTreeMap::new(),
            next_generation: 1,
            resuming: false,
        })
    }

    /// The services of the next [`apply`](Self::apply) may have been announced by the
    /// previous run (planned restart): their first round decides
    /// ([`ServiceMachine::resuming`]).
    pub fn resume_next(&mut self) {
        self.resuming = true;
    }

    /// Makes the running services those of `configs` (validated), diffed by name: identical
    /// ones are left alone.
    pub fn apply(&mut self, configs: &[ServiceConfig]) -> Vec<Applied> {
        let resuming = std::mem::take(&mut self.resuming);
        let mut applied = Vec::new();
        let wanted: BTreeMap<&str, &ServiceConfig> =
            configs.iter().map(|c| (c.name.as_str(), c)).collect();
        let gone: Vec<Arc<str>> = self
            .services
            .keys()
            .filter(|name| !wanted.contains_key(&***name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(running) = self.services.remove(&name) {
                running.task.abort();
                applied.push(Applied::Removed(name, Box::new(running.config)));
            }
        }
        for config in configs {
            let previous = self.services.get(config.name.as_str());
            if previous.is_some_and(|running| running.config == *config) {
                continue;
            }
            let name: Arc<str> = Arc::from(config.name.as_str());
            let machine = match previous {
                Some(running) => {
                    running.task.abort();
                    let machine = running.status.borrow().machine.clone();
                    applied.push(Applied::Changed(name.clone()));
                    machine.with_thresholds(thresholds(config))
                }
                None => {
                    applied.push(Applied::Added(name.clone()));
                    if resuming {
                        ServiceMachine::resuming(thresholds(config), Instant::now())
                    } else {
                        ServiceMachine::new(thresholds(config), Instant::now())
                    }
                }
            };
            self.spawn(name, config.clone(), machine);
        }
        applied
    }

    fn spawn(&mut self, name: Arc<str>, config: ServiceConfig, machine: ServiceMachine) {
        // Validated configs compile; a check that does not is reported by the task's
        // status and never passes (no panic on a config path).
        let checks: Vec<Check> = config
            .check
            .iter()
            .filter_map(|c| {
                Check::from_config(c)
                    .inspect_err(|err| tracing::error!("service {name:?}: {err}"))
                    .ok()
            })
            .collect();
        let compiled = checks.len() == config.check.len();
        let mut status = ServiceStatus::new(machine.clone(), &checks);
        if let Some(previous) = self.services.get(&name) {
            let before = previous.status.borrow();
            status.since = before.since;
            status.latency = before.latency.clone();
            status.rounds = before.rounds;
        }
        let (status_tx, status_rx) = watch::channel(status);
        let generation = self.next_generation;
        self.next_generation += 1;
        let task = runner::Task {
            name: name.clone(),
            generation,
            checks,
            interval: config.interval,
            timeout: config.timeout,
            machine,
            status: status_tx,
            events: self.events.clone(),
            exec_slots: self.exec_slots.clone(),
        };
        let handle = if compiled {
            self.runtime.spawn(task.run())
        } else {
            self.runtime.spawn(std::future::pending::<()>())
        };
        self.services.insert(
            name,
            Running {
                config,
                generation,
                task: handle.abort_handle(),
                status: status_rx,
            },
        );
    }

    /// Is `generation` the running task of `name` (else its event is stale)?
    pub fn is_current(&self, name: &str, generation: u64) -> bool {
        self.services
            .get(name)
            .is_some_and(|running| running.generation == generation)
    }

    pub fn config(&self, name: &str) -> Option<&ServiceConfig> {
        self.services.get(name).map(|running| &running.config)
    }

    /// What `name`'s prefixes should do now (its task's last state).
    pub fn announce(&self, name: &str) -> Option<Announce> {
        let running = self.services.get(name)?;
        Some(running.status.borrow().machine.announce())
    }

    pub fn phase(&self, name: &str) -> Option<Phase> {
        let running = self.services.get(name)?;
        Some(running.status.borrow().machine.phase())
    }

    /// Every service with its status, by name.
    pub fn statuses(&self) -> Vec<(&ServiceConfig, ServiceStatus)> {
        self.services
            .values()
            .map(|running| (&running.config, running.status.borrow().clone()))
            .collect()
    }

    pub fn names(&self) -> Vec<Arc<str>> {
        self.services.keys().cloned().collect()
    }
}

fn thresholds(config: &ServiceConfig) -> Thresholds {
    Thresholds {
        rise: config.rise,
        fall: config.fall,
        hold_down: config.hold_down,
        degrade: config.on_failure == config::OnFailure::Degrade,
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

//! BFD in the daemon: the BFD thread started when a neighbour first wants it, its sessions
//! kept in step with the speaker's neighbours, and its state changes applied to the FIB and
//! the sessions in a commit of their own (not behind the BGP events queued meanwhile).

use tokio::sync::mpsc;

use super::Agent;
use crate::{
    bfd::runtime::{Bfd, Ports, SessionSpec, StateChange},
    fib::Batch,
};

/// The daemon's side of the BFD thread.
pub(super) struct BfdClient {
    running: Option<Bfd>,
    /// The sessions last asked for.
    wanted: Vec<SessionSpec>,
    changes: mpsc::UnboundedSender<StateChange>,
    /// Taken by the event loop.
    receiver: Option<mpsc::UnboundedReceiver<StateChange>>,
    /// The last start failure, logged once.
    start_error: Option<String>,
}

impl BfdClient {
    pub(super) fn new() -> BfdClient {
        let (changes, receiver) = mpsc::unbounded_channel();
        BfdClient {
            running: None,
            wanted: Vec::new(),
            changes,
            receiver: Some(receiver),
            start_error: None,
        }
    }

    pub(super) fn take_changes(&mut self) -> mpsc::UnboundedReceiver<StateChange> {
        self.receiver.take().expect("taken once, by the event loop")
    }

    /// `show bfd`.
    pub(super) fn sessions(&self) -> Vec<crate::bfd::show::SessionStatus> {
        self.running.as_ref().map(Bfd::sessions).unwrap_or_default()
    }

    /// Tells the peers we go AdminDown (a restart or a stop is no path failure to them).
    pub(super) async fn shutdown(&mut self) {
        if let Some(bfd) = self.running.take() {
            bfd.shutdown().await;
        }
    }
}

impl Agent {
    /// Brings the BFD sessions to what the neighbours want now (after start-up, BGP events
    /// and reloads); starts the BFD thread the first time one is wanted.
    pub(super) fn sync_bfd(&mut self) {
        let wanted = self
            .speaker
            .as_ref()
            .map(|speaker| speaker.bfd_sessions())
            .unwrap_or_default();
        let client = &mut self.bfd;
        if wanted == client.wanted {
            return;
        }
        if client.running.is_none() {
            match Bfd::spawn(Ports::default(), client.changes.clone()) {
                Ok(bfd) => {
                    tracing::info!("BFD started");
                    client.running = Some(bfd);
                    client.start_error = None;
                }
                Err(err) => {
                    let error = format!("BFD not started: {err}");
                    if client.start_error.as_ref() != Some(&error) {
                        tracing::error!("{error}");
                        client.start_error = Some(error);
                    }
                    return;
                }
            }
        }
        client
            .running
            .as_ref()
            .expect("started")
            .sync(wanted.clone());
        client.wanted = wanted;
    }

    /// A BFD session changed state: the neighbour's next hops fail (or recover) in one
    /// commit, before anything else queued.
    pub(super) async fn on_bfd_change(&mut self, change: StateChange) {
        let mut batch = Batch::default();
        if let Some(speaker) = self.speaker.as_mut() {
            speaker.on_bfd_change(&change, &mut self.fib, &mut batch);
        }
        self.commit(batch).await;
    }

    /// `show neighbors` with each neighbour's BFD session (`bfd`: null without one).
    pub(super) fn neighbors_with_bfd(
        bfd: &BfdClient,
        neighbors: Vec<crate::bgp::northbound::NeighborStatus>,
    ) -> serde_json::Value {
        let sessions = bfd.sessions();
        let values = neighbors.into_iter().map(|neighbor| {
            let session = sessions.iter().find(|s| {
                Some(s.peer) == neighbor.address
                    && (neighbor.interface.is_none() || s.interface == neighbor.interface)
            });
            let mut value = serde_json::json!(neighbor);
            value["bfd"] = serde_json::json!(session);
            value
        });
        serde_json::Value::Array(values.collect())
    }
}

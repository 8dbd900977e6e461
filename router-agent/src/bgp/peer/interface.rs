//! What a session task and the speaker say to each other: commands in, events out.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::{net::TcpStream, sync::mpsc};

use super::super::{
    fsm::{DownReason, Negotiated, NotificationInfo, State},
    packet::{Update, UpdateError, types::Afi},
    rib::PeerId,
};
use super::UpdateCredit;

/// From the speaker to a session.
#[derive(Debug)]
pub enum PeerCommand {
    /// The neighbor connected to us.
    Incoming(TcpStream),
    /// Where the neighbor is now (an unnumbered neighbor, discovered).
    Remote(SocketAddr),
    /// Advertise or withdraw (Established only; dropped otherwise).
    Send(Vec<Update>),
    /// Tear the session down with this NOTIFICATION and keep it down (refusing the neighbor's
    /// connections) for `restart_after`, or until `Clear` when None.
    HoldDown {
        notification: NotificationInfo,
        restart_after: Option<Duration>,
    },
    /// The operator's hard reset (`clear neighbor`): Cease / Administrative Reset if a
    /// connection is up, then start again at once, ending any hold-down.
    Clear,
    /// The link to a directly connected neighbor went down (fast external fallover): end the
    /// session now, its routes withdrawn (not kept for graceful restart), and start again
    /// (connections fail until the link is back).
    LinkDown(String),
    /// Tear the session down with a Cease, and end the task.
    Stop(Option<String>),
    /// A planned restart of ours: end the session so that the peer keeps our routes (see
    /// `graceful_restart::session::graceful_close`), and end the task.
    GracefulStop(String),
    /// Answered once every command before it is carried out: every UPDATE queued before it
    /// has been written to the socket (at once when not Established, where `Send` is
    /// dropped). `drain --wait` waits for these.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// To the speaker: from the listeners, or from one neighbor's session.
#[derive(Debug)]
pub enum PeerEvent {
    /// An unnumbered neighbor's link-local address was heard (Router Advertisement).
    Discovered {
        interface: String,
        address: std::net::Ipv6Addr,
    },
    /// The listener accepted a connection (for the speaker to hand to a session).
    Accepted {
        stream: TcpStream,
        remote: SocketAddr,
    },
    Session {
        peer: PeerId,
        event: SessionEvent,
    },
}

/// From one neighbor's session task.
#[derive(Debug)]
pub enum SessionEvent {
    Established {
        negotiated: Negotiated,
        local: SocketAddr,
        remote: SocketAddr,
    },
    Update {
        update: Box<Update>,
        error: Option<UpdateError>,
        /// Returned when the event is dropped (bounded queue, see `peer/credit.rs`).
        credit: UpdateCredit,
    },
    RouteRefresh {
        afi: Afi,
    },
    Down {
        reason: String,
        /// Why, for graceful restart (whether the peer's routes are kept).
        cause: DownReason,
    },
    /// The task ended: stopped, or a dynamic neighbor's session ended.
    Closed,
    State {
        state: State,
    },
}

pub struct PeerHandle {
    pub commands: mpsc::UnboundedSender<PeerCommand>,
    /// What the session task counts (`counters.rs`).
    pub counters: std::sync::Arc<super::SessionCounters>,
}

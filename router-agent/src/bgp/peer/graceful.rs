//! The session task's part of graceful restart: how it closes for a planned restart, our
//! hard resets on a session that negotiated N, and a malformed capability said once.

use tokio::io::AsyncWriteExt;

use super::{CONNS, PeerTask, label};
use crate::bgp::{
    fsm::{CeaseSubcode, NotificationInfo},
    graceful_restart::{
        GracefulRestartCapability, NegotiatedGracefulRestart,
        session::{GracefulClose, graceful_close, hard_reset},
    },
    packet::{Capability, Open, capability::code},
};

impl PeerTask {
    /// Graceful restart as the Established connection negotiated it.
    pub(super) fn established_graceful_restart(&self) -> Option<&NegotiatedGracefulRestart> {
        let conn = self.peering.established()?;
        self.connections[conn.index()].graceful_restart.as_ref()
    }

    /// Our hard resets (stop, clear, max-prefix) as Cease / Hard Reset on a session that
    /// negotiated N: the peer must not keep our routes (RFC 8538 3).
    pub(super) fn hard(&self, notification: NotificationInfo) -> NotificationInfo {
        match self.established_graceful_restart() {
            Some(gr) if gr.notification => hard_reset(notification),
            _ => notification,
        }
    }

    /// A planned restart: the peer keeps our routes if it can (see `graceful_close`).
    pub(super) async fn graceful_stop(&mut self, message: &str) {
        let close = graceful_close(self.established_graceful_restart(), message);
        let cease = match close {
            GracefulClose::Notify(notification) => notification,
            GracefulClose::Silent => {
                // Closed before the FSM stops: its Cease finds no connection to go out on.
                for conn in CONNS {
                    if let Some(mut writer) = self.connections[conn.index()].writer.take() {
                        let _ = writer.shutdown().await;
                    }
                    self.connections[conn.index()].detach();
                }
                NotificationInfo::cease(CeaseSubcode::AdministrativeShutdown, Some(message))
            }
        };
        let actions = self.peering.stop(cease);
        self.carry_out(actions).await;
    }

    /// RFC 4724 gives no error for a malformed Graceful Restart capability: it is ignored
    /// (the session runs without GR), and said once per peer.
    pub(super) fn log_malformed_graceful_restart(&mut self, open: &Open) {
        let malformed = open
            .capabilities
            .iter()
            .find_map(|capability| match capability {
                Capability::Unknown { code, value } if *code == code::GRACEFUL_RESTART => {
                    Some(value)
                }
                _ => None,
            });
        if let Some(value) = malformed
            && !self.malformed_graceful_restart_logged
        {
            self.malformed_graceful_restart_logged = true;
            let why = GracefulRestartCapability::decode(value)
                .err()
                .map_or_else(|| "malformed".to_owned(), |err| err.to_string());
            tracing::warn!(peer = %label(self.remote), value = ?value,
                "{why}: capability ignored, no graceful restart with this peer (said once)");
        }
    }
}

//! Our connection attempts that get no answer, said once per streak when the neighbor's
//! segments are signed (TCP MD5 or TCP-AO).
//!
//! A peer's kernel drops a SYN whose signature it cannot verify, or an unsigned one where it
//! expects a signature (or a signed one where it expects none), without a word: no SYN-ACK,
//! no reset. So from our side a key mismatch at either end is only ever an attempt that got no
//! answer, retried every few seconds for as long as the mismatch lasts. Saying that once, with
//! the likely cause, tells the operator what a debug line per attempt would bury; saying it
//! per attempt would write thousands of lines a day.

use super::super::config::SessionSecurity;

/// The current streak of unanswered connection attempts: whether it was said.
#[derive(Debug, Default)]
pub(super) struct UnansweredConnects {
    said: bool,
}

impl UnansweredConnects {
    /// An attempt got no answer: whether it is the first of its streak (then say it).
    pub(super) fn first_of_streak(&mut self) -> bool {
        !std::mem::replace(&mut self.said, true)
    }

    /// A connection came up (ours or the neighbor's): the keys agree, and the next
    /// unanswered attempt starts a new streak.
    pub(super) fn connected(&mut self) {
        self.said = false;
    }
}

/// What signs the neighbor's segments, to name in the log (never the key): None if nothing
/// does, and then silence is not worth a warning (a peer that is down looks the same).
pub(super) fn signature(security: &SessionSecurity) -> Option<&'static str> {
    if security.md5.is_some() {
        Some("TCP MD5")
    } else if security.ao.is_some() {
        Some("TCP-AO")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::{
        auth::key::Md5Key,
        tcp_ao::key::{AoKey, TcpAoConfig},
    };

    #[test]
    fn said_once_per_streak_and_again_after_a_connection() {
        let mut unanswered = UnansweredConnects::default();
        assert!(unanswered.first_of_streak());
        // A neighbor retried every few seconds with a key that does not match: silent.
        for _ in 0..1000 {
            assert!(!unanswered.first_of_streak());
        }
        unanswered.connected();
        assert!(unanswered.first_of_streak());
        assert!(!unanswered.first_of_streak());
    }

    #[test]
    fn connections_outside_a_streak_change_nothing() {
        let mut unanswered = UnansweredConnects::default();
        unanswered.connected();
        unanswered.connected();
        assert!(unanswered.first_of_streak());
        assert!(!unanswered.first_of_streak());
    }

    #[test]
    fn only_signed_sessions_name_a_signature() {
        assert_eq!(signature(&SessionSecurity::default()), None);
        let md5 = SessionSecurity {
            md5: Md5Key::from_config(Some("a-key"), None, "password").unwrap(),
            ..SessionSecurity::default()
        };
        assert_eq!(signature(&md5), Some("TCP MD5"));
        let config: TcpAoConfig =
            toml::from_str("key_id = 1\nalgorithm = \"hmac(sha256)\"\nkey = \"a-key\"").unwrap();
        let ao = SessionSecurity {
            ao: Some(AoKey::from_config(&config, "tcp_ao").unwrap()),
            ..SessionSecurity::default()
        };
        assert_eq!(signature(&ao), Some("TCP-AO"));
    }
}

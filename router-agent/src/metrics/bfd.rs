//! BFD sessions: state and timers, from `show bfd`'s view.

use super::exposition::{Exposition, Labels, set};
use crate::bfd::show::SessionStatus;

/// RFC 5880 states, as `show bfd` spells them.
const STATES: [&str; 4] = ["AdminDown", "Down", "Init", "Up"];

pub fn record(out: &mut Exposition, sessions: &[SessionStatus]) {
    let state = out.gauge(
        "hostrouter_bfd_session_state",
        "BFD session state: 1 for the current state, 0 for the others",
    );
    let uptime = out.gauge(
        "hostrouter_bfd_session_uptime_seconds",
        "Seconds the BFD session has been Up (0 when it is not)",
    );
    let detection = out.gauge(
        "hostrouter_bfd_session_detection_time_seconds",
        "Negotiated detection time: how long the peer may be silent",
    );
    for session in sessions {
        let labels: Labels = vec![
            ("neighbor", session.peer.to_string()),
            ("interface", session.interface.clone().unwrap_or_default()),
        ];
        for name in STATES {
            let mut labels = labels.clone();
            labels.push(("state", name.to_owned()));
            set(&state, labels, f64::from(u8::from(session.state == name)));
        }
        let up = session.uptime_seconds.unwrap_or(0) as f64;
        set(&uptime, labels.clone(), up);
        set(&detection, labels, session.detection_time_ms / 1000.0);
    }
}

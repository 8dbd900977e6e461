//! What a session task counts for the metrics (`metrics/bgp.rs`): messages in and out by
//! type, flaps, the last NOTIFICATION's code. Atomics shared with the speaker's handle, so a
//! scrape reads them without asking the task; they live as long as the neighbor is
//! configured (a reset session keeps counting).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::bgp::fsm::{DownReason, NotificationInfo};

/// The message types counted, in the order of [`SessionCounters::messages`]; the last one
/// holds types we do not know (answered with a NOTIFICATION).
pub const MESSAGE_TYPES: [&str; 6] = [
    "open",
    "update",
    "notification",
    "keepalive",
    "route_refresh",
    "unknown",
];

/// No NOTIFICATION yet (codes start at 1).
const NO_CODE: u32 = 0;

#[derive(Debug, Default)]
pub struct SessionCounters {
    received: [AtomicU64; 6],
    sent: [AtomicU64; 6],
    /// Times the session left Established.
    flaps: AtomicU64,
    /// The last NOTIFICATION sent or received: code << 8 | subcode (0: none).
    last_notification: AtomicU32,
}

/// A copy of the counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionCountersView {
    /// Per [`MESSAGE_TYPES`].
    pub received: [u64; 6],
    pub sent: [u64; 6],
    pub flaps: u64,
    /// (code, subcode) of the last NOTIFICATION sent or received.
    pub last_notification: Option<(u8, u8)>,
}

/// The index in [`MESSAGE_TYPES`] of a message whose header carries `type_octet`.
fn type_index(type_octet: u8) -> usize {
    match type_octet {
        1..=5 => usize::from(type_octet - 1),
        _ => 5,
    }
}

impl SessionCounters {
    /// One message read; `frame` is the whole message, header included.
    pub fn received(&self, frame: &[u8]) {
        if let Some(&octet) = frame.get(TYPE_OFFSET) {
            self.received[type_index(octet)].fetch_add(1, Relaxed);
        }
    }

    /// One message written whole.
    pub fn sent(&self, message: &[u8]) {
        if let Some(&octet) = message.get(TYPE_OFFSET) {
            self.sent[type_index(octet)].fetch_add(1, Relaxed);
        }
    }

    pub fn left_established(&self) {
        self.flaps.fetch_add(1, Relaxed);
    }

    pub fn notification(&self, notification: &NotificationInfo) {
        let packed = u32::from(notification.code) << 8 | u32::from(notification.subcode);
        self.last_notification.store(packed, Relaxed);
    }

    /// A session ended: the NOTIFICATION it names, if any, is the last error.
    pub fn down(&self, reason: &DownReason) {
        if let DownReason::NotificationReceived(info) | DownReason::ErrorDetected(info) = reason {
            self.notification(info);
        }
    }

    pub fn view(&self) -> SessionCountersView {
        let load = |counters: &[AtomicU64; 6]| counters.each_ref().map(|c| c.load(Relaxed));
        let packed = self.last_notification.load(Relaxed);
        SessionCountersView {
            received: load(&self.received),
            sent: load(&self.sent),
            flaps: self.flaps.load(Relaxed),
            last_notification: (packed != NO_CODE).then_some(((packed >> 8) as u8, packed as u8)),
        }
    }
}

/// The Type octet's offset in a BGP header (after the 16-octet marker and the length).
const TYPE_OFFSET: usize = 18;

#[cfg(test)]
mod tests {
    use super::*;

    fn message(type_octet: u8) -> Vec<u8> {
        let mut bytes = vec![0xff; 19];
        bytes[TYPE_OFFSET] = type_octet;
        bytes
    }

    #[test]
    fn counts_by_type_and_keeps_the_last_notification() {
        let counters = SessionCounters::default();
        counters.received(&message(2));
        counters.received(&message(2));
        counters.received(&message(42));
        counters.sent(&message(4));
        counters.left_established();
        counters.down(&DownReason::NotificationReceived(NotificationInfo::new(
            6,
            2,
            Vec::new(),
        )));
        let view = counters.view();
        assert_eq!(view.received, [0, 2, 0, 0, 0, 1]);
        assert_eq!(view.sent, [0, 0, 0, 1, 0, 0]);
        assert_eq!(view.flaps, 1);
        assert_eq!(view.last_notification, Some((6, 2)));
        counters.down(&DownReason::TcpConnectionFails);
        assert_eq!(counters.view().last_notification, Some((6, 2)));
    }

    #[test]
    fn no_notification_is_none() {
        assert_eq!(SessionCounters::default().view().last_notification, None);
    }
}

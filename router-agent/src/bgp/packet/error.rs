//! The two ways a received message can be wrong.
//!
//! * [`MessageError`]: the session must be reset (RFC 4271 6). It carries the NOTIFICATION to
//!   send before closing the connection.
//! * [`UpdateError`]: an UPDATE whose path attributes are malformed in a way RFC 7606 lets
//!   the session survive. The decoded UPDATE is still returned next to it.

use std::fmt;

use super::notification::{
    ErrorCode, MessageHeaderSubcode, Notification, OpenMessageSubcode, UpdateMessageSubcode,
};

/// An error that resets the session: the NOTIFICATION to send, and why (for the log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (sending NOTIFICATION {notification})")]
pub struct MessageError {
    pub notification: Notification,
    pub reason: String,
}

impl MessageError {
    pub fn new(notification: Notification, reason: impl Into<String>) -> Self {
        MessageError {
            notification,
            reason: reason.into(),
        }
    }

    pub(crate) fn header(
        subcode: MessageHeaderSubcode,
        data: Vec<u8>,
        reason: impl Into<String>,
    ) -> Self {
        Self::new(
            Notification::new(ErrorCode::MessageHeader as u8, subcode as u8, data),
            reason,
        )
    }

    /// RFC 4271 6.1: "Bad Message Length", with the erroneous Length field as data.
    pub(crate) fn bad_length(length: u16, reason: impl Into<String>) -> Self {
        Self::header(
            MessageHeaderSubcode::BadMessageLength,
            length.to_be_bytes().to_vec(),
            reason,
        )
    }

    pub(crate) fn open(
        subcode: OpenMessageSubcode,
        data: Vec<u8>,
        reason: impl Into<String>,
    ) -> Self {
        Self::new(
            Notification::new(ErrorCode::OpenMessage as u8, subcode as u8, data),
            reason,
        )
    }

    /// OPEN Message Error with subcode 0 ("Unspecific"): a structural error in the optional
    /// parameters for which RFC 4271 names no subcode.
    pub(crate) fn open_unspecific(reason: impl Into<String>) -> Self {
        Self::new(
            Notification::new(ErrorCode::OpenMessage as u8, 0, Vec::new()),
            reason,
        )
    }

    pub(crate) fn update(
        subcode: UpdateMessageSubcode,
        data: Vec<u8>,
        reason: impl Into<String>,
    ) -> Self {
        Self::new(
            Notification::new(ErrorCode::UpdateMessage as u8, subcode as u8, data),
            reason,
        )
    }
}

/// RFC 7606: what to do with an UPDATE whose attributes are malformed but whose NLRI could
/// still be parsed. When several errors are found, the strongest approach wins (RFC 7606
/// 3.h) and `reason` lists them all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateError {
    /// RFC 7606 2 "treat-as-withdraw": every prefix this UPDATE advertises (its NLRI field
    /// and its MP_REACH_NLRI) must be handled as if it had been withdrawn, i.e. removed from
    /// the Adj-RIB-In. Its withdrawals still apply.
    TreatAsWithdraw { reason: String },
    /// RFC 7606 2 "attribute discard": the offending attribute(s) were dropped from the
    /// decoded attributes; the UPDATE is otherwise fine and is processed as usual.
    AttributeDiscard { reason: String },
}

impl UpdateError {
    pub fn reason(&self) -> &str {
        match self {
            UpdateError::TreatAsWithdraw { reason } | UpdateError::AttributeDiscard { reason } => {
                reason
            }
        }
    }
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdateError::TreatAsWithdraw { reason } => write!(f, "treat-as-withdraw: {reason}"),
            UpdateError::AttributeDiscard { reason } => write!(f, "attribute discard: {reason}"),
        }
    }
}

/// The problems found while decoding one UPDATE's path attributes, reduced to one RFC 7606
/// outcome at the end.
#[derive(Debug, Default)]
pub(crate) struct UpdateProblems {
    withdraw_reasons: Vec<String>,
    discard_reasons: Vec<String>,
    /// The RFC 4271 NOTIFICATION of the first treat-as-withdraw problem: RFC 7606 5.2 turns
    /// it into a session reset when the UPDATE carries no reachable NLRI.
    first_withdraw_notification: Option<Notification>,
}

impl UpdateProblems {
    pub(crate) fn treat_as_withdraw(&mut self, reason: String, notification: Notification) {
        self.first_withdraw_notification.get_or_insert(notification);
        self.withdraw_reasons.push(reason);
    }

    pub(crate) fn discard(&mut self, reason: String) {
        self.discard_reasons.push(reason);
    }

    pub(crate) fn needs_withdraw(&self) -> bool {
        !self.withdraw_reasons.is_empty()
    }

    /// RFC 7606 5.2: an UPDATE with path attributes but no reachable NLRI cannot be treated
    /// as withdraw with confidence, so any error stronger than attribute discard resets the
    /// session.
    pub(crate) fn into_session_reset(self) -> MessageError {
        let notification = self.first_withdraw_notification.unwrap_or_else(|| {
            Notification::new(
                ErrorCode::UpdateMessage as u8,
                UpdateMessageSubcode::MalformedAttributeList as u8,
                Vec::new(),
            )
        });
        let mut reasons = self.withdraw_reasons;
        reasons.extend(self.discard_reasons);
        MessageError::new(
            notification,
            format!(
                "{} in an UPDATE without reachable NLRI (RFC 7606 5.2)",
                reasons.join("; ")
            ),
        )
    }

    /// The strongest approach among the problems found (RFC 7606 3.h), if any.
    pub(crate) fn into_outcome(self) -> Option<UpdateError> {
        if !self.withdraw_reasons.is_empty() {
            let mut reasons = self.withdraw_reasons;
            reasons.extend(self.discard_reasons);
            Some(UpdateError::TreatAsWithdraw {
                reason: reasons.join("; "),
            })
        } else if !self.discard_reasons.is_empty() {
            Some(UpdateError::AttributeDiscard {
                reason: self.discard_reasons.join("; "),
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_approach_wins_and_all_reasons_are_kept() {
        let mut problems = UpdateProblems::default();
        problems.discard("AGGREGATOR: length 7".into());
        assert_eq!(
            UpdateProblems {
                discard_reasons: vec!["x".into()],
                ..Default::default()
            }
            .into_outcome(),
            Some(UpdateError::AttributeDiscard { reason: "x".into() })
        );
        problems.treat_as_withdraw(
            "ORIGIN: length 2".into(),
            Notification::new(3, UpdateMessageSubcode::AttributeLengthError as u8, vec![]),
        );
        assert_eq!(
            problems.into_outcome(),
            Some(UpdateError::TreatAsWithdraw {
                reason: "ORIGIN: length 2; AGGREGATOR: length 7".into()
            })
        );
        assert_eq!(UpdateProblems::default().into_outcome(), None);
    }

    #[test]
    fn message_error_displays_reason_and_notification() {
        let error = MessageError::bad_length(5000, "too long");
        assert_eq!(
            error.to_string(),
            "too long (sending NOTIFICATION Message Header Error/Bad Message Length (data: 1388))"
        );
    }
}

//! KEEPALIVE message (RFC 4271 4.4): the 19-octet header alone, type 4. The header check
//! (header.rs) already rejects any other length with Message Header Error/Bad Message
//! Length, so there is nothing to decode here; this module holds its golden test.

#[cfg(test)]
mod tests {
    use super::super::{Codec, Message, MessageType};

    /// Hand-assembled from RFC 4271 4.1 (a capture from FRR/BIRD will be added by the interop
    /// tests).
    const KEEPALIVE: [u8; 19] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // marker
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0x00, 0x13, // length 19
        0x04, // type KEEPALIVE
    ];

    #[test]
    fn golden_keepalive() {
        for codec in [Codec::default(), Codec::FOUR_OCTET_AS] {
            assert_eq!(&Message::Keepalive.encode(&codec)[..], KEEPALIVE);
            let decoded = Message::decode(&KEEPALIVE, &codec).unwrap();
            assert_eq!(decoded.message, Message::Keepalive);
            assert_eq!(decoded.update_error, None);
            assert_eq!(decoded.message.message_type(), MessageType::Keepalive);
        }
    }

    #[test]
    fn keepalive_with_a_body_is_bad_message_length() {
        let mut long = KEEPALIVE.to_vec();
        long[17] = 20;
        long.push(0);
        let error = Message::decode(&long, &Codec::default()).unwrap_err();
        assert_eq!(
            (error.notification.code, error.notification.subcode),
            (1, 2)
        );
        assert_eq!(error.notification.data, vec![0, 20]);
    }
}

//! Property tests of the client's wire decoder: what a hostile or broken server can send the
//! load generator. Any text must decode to a packet or a `CodecError`, never a panic, and what
//! decodes must encode back to text that decodes to the same packet.
//!
//! `cargo test` tries 256 inputs per property (about a second); `PROPTEST_CASES=200000` runs a
//! longer search (the figures are in the closing note of issue 13).

use proptest::prelude::*;
use roomstorm_client::codec::{
    EnginePacket, Handshake, SocketPacket, connect_error_message, parse_event_head, split_payload,
};

/// Text built from the grammar's own pieces, so the search reaches deep into the decoder
/// instead of failing at the first byte.
fn wire_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("0".to_string()),
        Just("4".to_string()),
        Just("42".to_string()),
        Just("45".to_string()),
        Just("b".to_string()),
        Just("/".to_string()),
        Just("/chat,".to_string()),
        Just(",".to_string()),
        Just("-".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\u{1e}".to_string()),
        Just("probe".to_string()),
        Just("\"message\"".to_string()),
        Just("{\"sid\":\"x\",\"pingInterval\":1,\"pingTimeout\":1}".to_string()),
        "[0-9]{1,25}",
        "\\PC{0,4}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![wire_text(), any::<String>()]
}

proptest! {
    #[test]
    fn engine_packets_decode_or_err_and_round_trip(text in any_text()) {
        if let Ok(packet) = EnginePacket::decode(&text) {
            let again = packet.encode();
            prop_assert_eq!(EnginePacket::decode(&again), Ok(packet));
        }
    }

    #[test]
    fn socket_packets_decode_or_err_and_round_trip(text in any_text()) {
        if let Ok(packet) = SocketPacket::decode(&text) {
            let again = packet.encode();
            prop_assert_eq!(SocketPacket::decode(&again), Ok(packet));
        }
    }

    #[test]
    fn a_polling_payload_splits_into_packets_that_decode_or_err(text in any_text()) {
        for segment in split_payload(&text) {
            prop_assert!(!segment.is_empty());
            if let Ok(EnginePacket::Message(data)) = EnginePacket::decode(segment) {
                let _ = SocketPacket::decode(data);
            }
        }
    }

    #[test]
    fn handshakes_event_heads_and_connect_errors_never_panic(text in any_text()) {
        let _ = Handshake::parse(&text);
        if let Ok(head) = parse_event_head(&text) {
            prop_assert!(text.trim_start().starts_with('['));
            prop_assert!(head.arg_count < text.len());
        }
        let message = connect_error_message(&text);
        prop_assert!(message.len() <= text.len() + 64, "an error message stays short: {}", message);
    }
}

//! Property tests of the client's wire decoder: what a hostile or broken server can send the
//! load generator. Any text must decode to a packet or a `CodecError`, never a panic, and what
//! decodes must encode back to text that decodes to the same packet.
//!
//! `cargo test` tries 256 inputs per property (about a second); `PROPTEST_CASES=200000` runs a
//! longer search (the figures are in the closing note of issue 13).

use proptest::prelude::*;
use roomstorm_client::codec::{
    EnginePacket, Handshake, PacketType, SocketPacket, connect_error_message, encode_connect,
    encode_disconnect, encode_emit, parse_event_head, split_payload,
};

/// Text built from the grammar's own pieces, so the search reaches deep into the decoder
/// instead of failing at the first byte.
fn wire_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("0".to_string()),
        Just("4".to_string()),
        Just("42".to_string()),
        Just("43".to_string()),
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

    /// What the client encodes (emits with and without an ack id, CONNECTs with auth,
    /// DISCONNECTs, on any namespace) decodes to the parts it was built from.
    #[test]
    fn emits_connects_and_disconnects_decode_to_their_parts(
        namespace in prop_oneof![Just("/".to_string()), "/[a-z0-9_ .-]{1,12}"],
        ack_id in proptest::option::of(any::<u64>()),
        event in "\\PC{0,12}",
        args in prop::collection::vec(prop_oneof![
            Just(json_text(serde_json::json!({"text": "rs1 0 1 2 xx"}))),
            any::<String>().prop_map(|s| json_text(serde_json::Value::String(s))),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("[1,[2,{}]]".to_string()),
        ], 0..3),
        auth in proptest::option::of(any::<String>().prop_map(|s| json_text(serde_json::json!({"token": s})))),
    ) {
        let args_json = args.join(",");
        let text = encode_emit(&namespace, ack_id, &event, &args_json);
        let Ok(EnginePacket::Message(m)) = EnginePacket::decode(&text) else {
            return Err(TestCaseError::fail(format!("not a message: {text}")));
        };
        let p = SocketPacket::decode(m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((p.ty, p.namespace, p.ack_id), (PacketType::Event, namespace.as_str(), ack_id));
        let head = parse_event_head(p.data).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(head.name.as_ref(), event.as_str());
        prop_assert_eq!(head.arg_count, args.len());

        let connect = encode_connect(&namespace, auth.as_deref());
        let p = SocketPacket::decode(&connect[1..]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((p.ty, p.namespace, p.data), (PacketType::Connect, namespace.as_str(), auth.as_deref().unwrap_or("")));
        let disconnect = encode_disconnect(&namespace);
        let p = SocketPacket::decode(&disconnect[1..]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!((p.ty, p.namespace), (PacketType::Disconnect, namespace.as_str()));
    }
}

fn json_text(value: serde_json::Value) -> String {
    value.to_string()
}

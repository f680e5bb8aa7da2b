//! Cross-check of `codec` against socketioxide's own Socket.IO parser.
//!
//! It exists because the real-server tests only exercise the packets this client sends in
//! practice; here every packet shape (namespaces, ack ids, binary placeholders, connect
//! errors) is encoded by socketioxide and decoded by us, and encoded by us and decoded by
//! socketioxide, so both directions agree with the server library byte for byte.

use roomstorm_client::codec::{
    self, EnginePacket, PacketType, SocketPacket, connect_error_message, parse_event_head,
};
use serde_json::json;
use socketioxide_core::Value;
use socketioxide_core::packet::{Packet, PacketData};
use socketioxide_core::parser::{Parse, ParseConfig, ParserState};
use socketioxide_parser_common::CommonParser;

fn theirs_encode(packet: Packet) -> String {
    match CommonParser.encode(packet) {
        Value::Str(s, _) => s.as_str().to_owned(),
        Value::Bytes(_) => panic!("binary value"),
    }
}

fn theirs_decode(text: &str) -> Packet {
    CommonParser
        .decode_str(
            &ParseConfig::default(),
            &ParserState::default(),
            text.to_owned().into(),
        )
        .unwrap_or_else(|e| panic!("socketioxide cannot decode {text:?}: {e:?}"))
}

fn value(data: &serde_json::Value, event: Option<&str>) -> Value {
    CommonParser
        .encode_value(data, event)
        .expect("encode value")
}

#[test]
fn socketioxide_encoded_packets_decode_here() {
    let data = json!({"text": "a\u{1e}b \"q\" é", "n": [1, 2]});

    // EVENT on "/" without ack.
    let text = theirs_encode(Packet::event("/", value(&data, Some("echo"))));
    let p = SocketPacket::decode(&text).expect("decode");
    assert_eq!(
        (p.ty, p.namespace, p.ack_id),
        (PacketType::Event, "/", None)
    );
    let head = parse_event_head(p.data).expect("head");
    assert_eq!(head.name, "echo");
    let first: serde_json::Value =
        serde_json::from_str(head.first_arg.expect("arg").get()).expect("json");
    assert_eq!(first, data);

    // EVENT on a namespace with an ack id.
    let mut packet = Packet::event("/admin", value(&json!(1), Some("ev")));
    packet.inner.set_ack_id(12);
    let text = theirs_encode(packet);
    let p = SocketPacket::decode(&text).expect("decode");
    assert_eq!((p.namespace, p.ack_id), ("/admin", Some(12)));
    assert_eq!(p.encode(), text);

    // ACK.
    let text = theirs_encode(Packet::ack("/", value(&json!("ok"), None), 7));
    let p = SocketPacket::decode(&text).expect("decode");
    assert_eq!((p.ty, p.ack_id), (PacketType::Ack, Some(7)));

    // CONNECT ack, CONNECT_ERROR, DISCONNECT.
    let sid = CommonParser
        .encode_default(&json!({"sid": "abc"}))
        .expect("encode");
    let text = theirs_encode(Packet::connect("/", Some(sid)));
    let p = SocketPacket::decode(&text).expect("decode");
    assert_eq!(p.ty, PacketType::Connect);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(p.data).unwrap(),
        json!({"sid": "abc"})
    );
    let text = theirs_encode(Packet::connect_error("/", "no \"room\" é"));
    let p = SocketPacket::decode(&text).expect("decode");
    assert_eq!(p.ty, PacketType::ConnectError);
    assert_eq!(connect_error_message(p.data), "no \"room\" é");
    let text = theirs_encode(Packet::disconnect("/"));
    assert_eq!(
        SocketPacket::decode(&text).unwrap().ty,
        PacketType::Disconnect
    );

    // BINARY_EVENT: placeholder and attachment count.
    let bin = CommonParser
        .encode_value(&(bytes::Bytes::from_static(&[1, 2, 3]),), Some("bin"))
        .expect("encode binary");
    let text = theirs_encode(Packet::event("/", bin));
    let p = SocketPacket::decode(&text).expect("decode");
    assert_eq!((p.ty, p.attachments), (PacketType::BinaryEvent, 1));
    assert!(p.data.contains("_placeholder"), "{text}");
}

#[test]
fn packets_encoded_here_decode_in_socketioxide() {
    // What Sender::emit sends.
    let data = json!({"text": "a\u{1e}b \"q\" é"});
    let engine = codec::encode_event("say", &data).expect("encode");
    let EnginePacket::Message(sio) = EnginePacket::decode(&engine).unwrap() else {
        panic!("not a message");
    };
    let packet = theirs_decode(sio);
    assert_eq!(&*packet.ns, "/");
    let PacketData::Event(mut v, None) = packet.inner else {
        panic!("{:?}", packet.inner);
    };
    assert_eq!(CommonParser.read_event(&v).unwrap(), "say");
    let got: serde_json::Value = CommonParser.decode_value(&mut v, true).unwrap();
    assert_eq!(got, data);

    // What emit_raw_json sends.
    let engine = codec::encode_event_raw_json("say", r#"[1,{"a":null}]"#);
    let packet = theirs_decode(&engine[1..]);
    let PacketData::Event(mut v, None) = packet.inner else {
        panic!("{:?}", packet.inner);
    };
    let got: serde_json::Value = CommonParser.decode_value(&mut v, true).unwrap();
    assert_eq!(got, json!([1, {"a": null}]));

    // Namespaced event with ack id, ack, connect with auth, disconnect.
    let p = SocketPacket {
        ty: PacketType::Event,
        namespace: "/admin",
        attachments: 0,
        ack_id: Some(42),
        data: r#"["ev",1]"#,
    };
    let packet = theirs_decode(&p.encode());
    assert_eq!(&*packet.ns, "/admin");
    assert!(matches!(packet.inner, PacketData::Event(_, Some(42))));

    let p = SocketPacket {
        ty: PacketType::Ack,
        namespace: "/",
        attachments: 0,
        ack_id: Some(3),
        data: r#"["ok"]"#,
    };
    assert!(matches!(
        theirs_decode(&p.encode()).inner,
        PacketData::EventAck(_, 3)
    ));

    let p = SocketPacket {
        ty: PacketType::Connect,
        namespace: "/",
        attachments: 0,
        ack_id: None,
        data: r#"{"token":"123"}"#,
    };
    assert!(matches!(
        theirs_decode(&p.encode()).inner,
        PacketData::Connect(Some(_))
    ));
    assert!(matches!(
        theirs_decode("0").inner,
        PacketData::Connect(None)
    ));
    assert!(matches!(theirs_decode("1").inner, PacketData::Disconnect));
}

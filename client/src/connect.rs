//! Opening a connection: [`connect`] runs the Engine.IO handshake and the Socket.IO CONNECT
//! over websocket, polling, or polling upgraded to websocket, and hands back the two halves,
//! [`Sender`] and [`Receiver`], once the server acknowledged.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::codec::{self, EnginePacket, Handshake, PacketType, SocketPacket};
use crate::config::{ClientConfig, ResolvedConfig, Transport};
use crate::error::ConnectError;
use crate::net::{self, PollTarget, WsStream};
use crate::receiver::{Receiver, Source, next_range};
use crate::sender::{Sender, Shared, Writer};

/// Opens a Socket.IO connection to `cfg.namespace` (the main one by default), sending
/// `cfg.auth` with the CONNECT.
///
/// Returns once the server acknowledged the CONNECT (`40{"sid":..}`, `40/chat,{"sid":..}`):
/// emitting right away is safe. A CONNECT_ERROR gives [`ConnectError::Refused`] with the server's message. The whole
/// call is bounded by `cfg.connect_timeout`.
pub async fn connect(cfg: &ClientConfig) -> Result<(Sender, Receiver), ConnectError> {
    match tokio::time::timeout(cfg.connect_timeout, connect_inner(cfg)).await {
        Ok(res) => res,
        Err(_) => Err(ConnectError::Timeout(cfg.connect_timeout)),
    }
}

/// What the connect phase does with one packet.
enum Handshaking {
    Continue,
    Pong,
    Acked(String),
}

/// What the connect phase does with one packet, for a CONNECT to `namespace`.
fn connect_step(packet: &str, namespace: &str) -> Result<Handshaking, ConnectError> {
    const DURING: &str = "Socket.IO connect";
    let proto = |detail: String| ConnectError::Protocol {
        during: DURING,
        detail,
    };
    let msg = match EnginePacket::decode(packet).map_err(|e| proto(e.to_string()))? {
        EnginePacket::Ping(_) => return Ok(Handshaking::Pong),
        EnginePacket::Close => {
            return Err(ConnectError::Closed {
                during: DURING,
                detail: "server sent Engine.IO close (1)".to_owned(),
            });
        }
        EnginePacket::Message(m) => m,
        _ => return Ok(Handshaking::Continue),
    };
    let p = SocketPacket::decode(msg).map_err(|e| proto(e.to_string()))?;
    if p.namespace != namespace {
        return Ok(Handshaking::Continue);
    }
    match p.ty {
        PacketType::Connect => {
            #[derive(serde::Deserialize)]
            struct Ack {
                sid: String,
            }
            let sid = serde_json::from_str::<Ack>(p.data)
                .map(|a| a.sid)
                .unwrap_or_default();
            Ok(Handshaking::Acked(sid))
        }
        PacketType::ConnectError => Err(ConnectError::Refused {
            message: codec::connect_error_message(p.data),
        }),
        PacketType::Disconnect => Err(ConnectError::Closed {
            during: DURING,
            detail: "server sent DISCONNECT (41)".to_owned(),
        }),
        _ => Ok(Handshaking::Continue),
    }
}

fn parse_open(packet: &str) -> Result<Handshake, ConnectError> {
    let proto = |detail: String| ConnectError::Protocol {
        during: "Engine.IO handshake",
        detail,
    };
    match EnginePacket::decode(packet).map_err(|e| proto(e.to_string()))? {
        EnginePacket::Open(data) => Handshake::parse(data).map_err(|e| proto(e.to_string())),
        _ => Err(proto(format!("expected an open packet, got {packet:?}"))),
    }
}

async fn ws_recv_text(ws: &mut WsStream, during: &'static str) -> Result<Utf8Bytes, ConnectError> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t),
            Some(Ok(Message::Close(frame))) => {
                return Err(ConnectError::Closed {
                    during,
                    detail: match frame {
                        Some(f) => {
                            format!("close code {}, {:?}", u16::from(f.code), f.reason.as_str())
                        }
                        None => "close frame".to_owned(),
                    },
                });
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(net::ws_connect_error(during, e)),
            None => {
                return Err(ConnectError::Closed {
                    during,
                    detail: "connection ended".to_owned(),
                });
            }
        }
    }
}

async fn ws_send_text(
    ws: &mut WsStream,
    text: impl Into<Utf8Bytes>,
    during: &'static str,
) -> Result<(), ConnectError> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| net::ws_connect_error(during, e))
}

async fn poll_get_text(
    target: &PollTarget,
    during: &'static str,
) -> Result<Utf8Bytes, ConnectError> {
    let body = target
        .get()
        .await
        .map_err(|e| e.into_connect_error(during))?;
    Utf8Bytes::try_from(body).map_err(|_| ConnectError::Protocol {
        during,
        detail: "polling payload is not valid UTF-8".to_owned(),
    })
}

async fn poll_post(
    target: &PollTarget,
    payload: impl Into<Bytes>,
    during: &'static str,
) -> Result<(), ConnectError> {
    target
        .post(payload.into())
        .await
        .map_err(|e| e.into_connect_error(during))
}

async fn connect_inner(cfg: &ClientConfig) -> Result<(Sender, Receiver), ConnectError> {
    let target = ResolvedConfig::from_config(cfg)?;
    match cfg.transport {
        Transport::WebSocket => connect_websocket(&target, cfg.bind_addr).await,
        Transport::Polling | Transport::Upgrade => {
            connect_polling(&target, cfg.bind_addr, cfg.transport == Transport::Upgrade).await
        }
    }
}

async fn connect_websocket(
    target: &ResolvedConfig,
    bind: Option<IpAddr>,
) -> Result<(Sender, Receiver), ConnectError> {
    let mut ws = net::open_websocket(target, bind, None).await?;
    let open = ws_recv_text(&mut ws, "Engine.IO handshake").await?;
    let hs = parse_open(&open)?;
    ws_send_text(&mut ws, target.connect_packet.clone(), "Socket.IO connect").await?;
    let socket_sid = loop {
        let text = ws_recv_text(&mut ws, "Socket.IO connect").await?;
        match connect_step(&text, &target.namespace)? {
            Handshaking::Continue => {}
            Handshaking::Pong => ws_send_text(&mut ws, "3", "Socket.IO connect").await?,
            Handshaking::Acked(sid) => break sid,
        }
    };
    let (sink, stream) = ws.split();
    Ok(assemble(
        (&hs, &target.namespace),
        socket_sid,
        Writer::Ws(sink),
        Source::Ws(stream),
        (Utf8Bytes::default(), 0, false),
    ))
}

async fn connect_polling(
    target: &ResolvedConfig,
    bind: Option<IpAddr>,
    upgrade: bool,
) -> Result<(Sender, Receiver), ConnectError> {
    let client = net::http_client(bind);
    let handshake_target = PollTarget::new(
        client.clone(),
        &target.polling_url(None),
        target.headers.clone(),
    )?;
    let body = poll_get_text(&handshake_target, "Engine.IO handshake").await?;
    drop(handshake_target);

    let mut pos = 0;
    let (s, e) = next_range(&body, &mut pos, true).ok_or_else(|| ConnectError::Protocol {
        during: "Engine.IO handshake",
        detail: "empty handshake response".to_owned(),
    })?;
    let hs = parse_open(&body[s..e])?;
    let poll = Arc::new(PollTarget::new(
        client,
        &target.polling_url(Some(&hs.sid)),
        target.headers.clone(),
    )?);

    // Anything after the open packet (a ping) is handled like the packets below.
    let mut pending = Some((body, pos));
    poll_post(&poll, target.connect_packet.clone(), "Socket.IO connect").await?;
    let (socket_sid, leftover, leftover_pos) = 'acked: loop {
        let (body, mut pos) = match pending.take() {
            Some(b) => b,
            None => (poll_get_text(&poll, "Socket.IO connect").await?, 0),
        };
        while let Some((s, e)) = next_range(&body, &mut pos, true) {
            match connect_step(&body[s..e], &target.namespace)? {
                Handshaking::Continue => {}
                Handshaking::Pong => poll_post(&poll, "3", "Socket.IO connect").await?,
                // Packets after the ack in this payload (e.g. an event emitted by the
                // server's connect handler) go to the receiver.
                Handshaking::Acked(sid) => break 'acked (sid, body, pos),
            }
        }
    };

    if !upgrade {
        return Ok(assemble(
            (&hs, &target.namespace),
            socket_sid,
            Writer::Polling(poll.clone()),
            Source::Polling {
                target: poll,
                inflight: None,
            },
            (leftover, leftover_pos, true),
        ));
    }

    // Upgrade. No GET or POST of ours is in flight at this point (connect issues them one
    // at a time and awaits each), so polling is already paused: the server's queued packets
    // stay queued and are delivered over the websocket once it sees `5`, and the packets
    // left in the last GET payload are handed to the receiver ahead of them.
    if !hs.upgrades.iter().any(|u| u == "websocket") {
        return Err(ConnectError::Protocol {
            during: "websocket upgrade",
            detail: format!("server offers no websocket upgrade ({:?})", hs.upgrades),
        });
    }
    let mut ws = net::open_websocket(target, bind, Some(&hs.sid)).await?;
    ws_send_text(&mut ws, "2probe", "websocket upgrade").await?;
    let answer = ws_recv_text(&mut ws, "websocket upgrade").await?;
    if answer.as_str() != "3probe" {
        return Err(ConnectError::Protocol {
            during: "websocket upgrade",
            detail: format!("expected 3probe, got {:?}", answer.as_str()),
        });
    }
    ws_send_text(&mut ws, "5", "websocket upgrade").await?;
    drop(poll);
    let (sink, stream) = ws.split();
    Ok(assemble(
        (&hs, &target.namespace),
        socket_sid,
        Writer::Ws(sink),
        Source::Ws(stream),
        (leftover, leftover_pos, true),
    ))
}

/// The two halves of a connection the server has acknowledged on `namespace`; `leftover` is
/// what the handshake read past the ack (see [`Receiver::new`]).
fn assemble(
    (hs, namespace): (&Handshake, &str),
    socket_sid: String,
    writer: Writer,
    source: Source,
    leftover: (Utf8Bytes, usize, bool),
) -> (Sender, Receiver) {
    let shared = Arc::new(Shared::new(writer, (&hs.sid, namespace), socket_sid));
    let ping_window = Duration::from_millis(hs.ping_interval.saturating_add(hs.ping_timeout));
    let receiver = Receiver::new(shared.clone(), source, leftover, ping_window);
    (Sender::new(shared), receiver)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::classify;

    /// Every short string over the grammar's characters: decoding never panics.
    #[test]
    fn no_panic_on_short_inputs() {
        const ALPHABET: [&str; 14] = [
            "0", "1", "2", "4", "5", "6", "/", ",", "-", "[", "\"", "é", "9", "\x1e",
        ];
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let _ = classify(&prefix, "/");
            let _ = classify(&prefix, "/chat");
            let _ = parse_open(&prefix);
            let _ = connect_step(&prefix, "/");
            let _ = connect_step(&prefix, "/chat");
            let mut pos = 0;
            while next_range(&prefix, &mut pos, true).is_some() {}
            if prefix.chars().count() < 5 {
                for c in ALPHABET {
                    stack.push(format!("{prefix}{c}"));
                }
            }
        }
    }
}

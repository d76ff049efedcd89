//! MQTT 3.1.1: `CONNECT`/`CONNACK`, `PINGREQ`, `SUBSCRIBE` and `PUBLISH`
//! (QoS 0) on a random test topic, `DISCONNECT`.

use vexxy_model::ProbeReach;

use super::{token, Fail, Session, MAX_FRAME_BYTES};

/// Most packets read while waiting for one answer.
const MAX_PACKETS: usize = 64;

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&u16::try_from(s.len()).unwrap_or(0).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = u8::try_from(len % 128).unwrap_or(0);
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A control packet's type (high nibble) and body.
fn read_packet(s: &mut Session<'_>) -> Result<(u8, Vec<u8>), Fail> {
    let first = s.read_exact(1)?[0];
    let mut len: usize = 0;
    for i in 0..4 {
        let byte = s.read_exact(1)?[0];
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if len > MAX_FRAME_BYTES {
                return Err(Fail::TooLarge);
            }
            return Ok((first >> 4, s.read_exact(len)?));
        }
    }
    Err(Fail::Malformed("remaining length"))
}

/// Reads packets until one of type `kind` (others, e.g. a delivered
/// `PUBLISH`, are counted in `publishes`).
fn expect(s: &mut Session<'_>, kind: u8, publishes: &mut u64) -> Result<Vec<u8>, Fail> {
    for _ in 0..MAX_PACKETS {
        let (got, body) = read_packet(s)?;
        if got == kind {
            return Ok(body);
        }
        if got == 3 {
            *publishes += 1;
        } else {
            return Err(Fail::Malformed("unexpected packet"));
        }
    }
    Err(Fail::Malformed("no answer"))
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    let id = token();
    let mut connect = Vec::new();
    string(&mut connect, "MQTT");
    connect.push(4); // 3.1.1
    connect.push(0x02); // clean session
    connect.extend_from_slice(&30u16.to_be_bytes());
    string(&mut connect, &format!("vexxy-{id}"));
    s.send(&packet(0x10, &connect))?;
    let (kind, ack) = read_packet(s)?;
    s.answered();
    if kind != 2 || ack.len() != 2 {
        return Err(Fail::Malformed("expected CONNACK"));
    }
    match ack[1] {
        0 => s.reached(ProbeReach::Handshake, "CONNACK accepted"),
        4 | 5 => {
            s.reached(ProbeReach::AuthRequired, "refused: not authorized");
            return Err(Fail::Done);
        }
        _ => {
            s.reached(ProbeReach::Answered, "CONNACK refused the connection");
            return Err(Fail::Done);
        }
    }
    let mut publishes = 0;
    s.send(&[0xc0, 0])?;
    expect(s, 13, &mut publishes)?;
    s.answered();
    s.reached(ProbeReach::Commands, "CONNACK accepted; PINGRESP");
    let topic = format!("vexxy/probe/{id}");
    let mut subscribe = 1u16.to_be_bytes().to_vec();
    string(&mut subscribe, &topic);
    subscribe.push(0);
    s.send(&packet(0x82, &subscribe))?;
    let suback = expect(s, 9, &mut publishes)?;
    s.answered();
    let granted = suback.get(2).is_some_and(|&code| code != 0x80);
    let mut publish = Vec::new();
    string(&mut publish, &topic);
    publish.extend_from_slice(b"vexxy");
    s.send(&packet(0x30, &publish))?;
    // a PINGREQ after the PUBLISH: its PINGRESP comes after the delivery
    s.send(&[0xc0, 0])?;
    expect(s, 13, &mut publishes)?;
    s.answered();
    if publishes > 0 {
        s.answered();
    }
    s.reached(
        ProbeReach::Commands,
        format!(
            "CONNACK accepted; PINGRESP; SUBSCRIBE {}; PUBLISH {}",
            if granted { "granted" } else { "refused" },
            if publishes > 0 {
                "delivered back"
            } else {
                "not delivered"
            },
        ),
    );
    let _ = s.write_raw(&[0xe0, 0]);
    Ok(())
}

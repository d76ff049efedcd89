//! AMQP 0-9-1: the protocol header, `Connection.Start`; then PLAIN
//! `guest`/`guest` through `Connection.Tune`/`Open`, and `Connection.Close`.

use vexxy_model::ProbeReach;

use super::wire::{be16, be32};
use super::{Fail, Session, MAX_FRAME_BYTES};

const FRAME_METHOD: u8 = 1;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xce;

/// Most frames read while waiting for one method (heartbeats, …).
const MAX_FRAMES: usize = 64;

/// A method frame's class, method and arguments.
struct Method {
    class: u16,
    method: u16,
    args: Vec<u8>,
}

fn read_method(s: &mut Session<'_>) -> Result<Method, Fail> {
    for _ in 0..MAX_FRAMES {
        let head = s.read_exact(7)?;
        if head.starts_with(b"AMQP") {
            // the server's own header: it wants another protocol version
            let _ = s.read_exact(1)?;
            return Err(Fail::Malformed("protocol version refused"));
        }
        let size = be32(&head, 3).ok_or(Fail::Malformed("frame size"))?;
        let size = usize::try_from(size).map_err(|_| Fail::TooLarge)?;
        if size > MAX_FRAME_BYTES {
            return Err(Fail::TooLarge);
        }
        let payload = s.read_exact(size + 1)?;
        if payload.last() != Some(&FRAME_END) {
            return Err(Fail::Malformed("frame end"));
        }
        match head[0] {
            FRAME_METHOD => {
                if size < 4 {
                    return Err(Fail::Malformed("method frame"));
                }
                let class = be16(&payload, 0).ok_or(Fail::Malformed("method frame"))?;
                let method = be16(&payload, 2).ok_or(Fail::Malformed("method frame"))?;
                return Ok(Method {
                    class,
                    method,
                    args: payload[4..size].to_vec(),
                });
            }
            FRAME_HEARTBEAT => continue,
            _ => return Err(Fail::Malformed("frame type")),
        }
    }
    Err(Fail::Malformed("no method frame"))
}

fn method_frame(class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    let mut out = vec![FRAME_METHOD, 0, 0];
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(&payload);
    out.push(FRAME_END);
    out
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(u8::try_from(s.len()).unwrap_or(0));
    out.extend_from_slice(&s.as_bytes()[..usize::from(u8::try_from(s.len()).unwrap_or(0))]);
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    s.send(b"AMQP\x00\x00\x09\x01")?;
    let start = read_method(s)?;
    s.answered();
    if (start.class, start.method) != (10, 10) {
        return Err(Fail::Malformed("expected Connection.Start"));
    }
    s.reached(ProbeReach::Answered, "Connection.Start read");
    let mut args = 0u32.to_be_bytes().to_vec(); // empty client-properties
    short_str(&mut args, "PLAIN");
    let response = b"\0guest\0guest";
    args.extend_from_slice(&u32::try_from(response.len()).unwrap_or(0).to_be_bytes());
    args.extend_from_slice(response);
    short_str(&mut args, "en_US");
    s.send(&method_frame(10, 11, &args))?;
    let tune = read_method(s)?;
    s.answered();
    match (tune.class, tune.method) {
        (10, 30) => {}
        (10, 50) => {
            s.reached(ProbeReach::AuthRequired, "refused: guest login refused");
            return Err(Fail::Done);
        }
        _ => return Err(Fail::Malformed("expected Connection.Tune")),
    }
    s.reached(
        ProbeReach::Handshake,
        "Connection.Tune after PLAIN guest login",
    );
    let channel_max = be16(&tune.args, 0).ok_or(Fail::Malformed("Connection.Tune"))?;
    let frame_max = be32(&tune.args, 2).ok_or(Fail::Malformed("Connection.Tune"))?;
    let mut tune_ok = channel_max.to_be_bytes().to_vec();
    tune_ok.extend_from_slice(&frame_max.to_be_bytes());
    tune_ok.extend_from_slice(&0u16.to_be_bytes()); // no heartbeats
    s.send(&method_frame(10, 31, &tune_ok))?;
    let mut open = Vec::new();
    short_str(&mut open, "/");
    short_str(&mut open, "");
    open.push(0);
    s.send(&method_frame(10, 40, &open))?;
    let opened = read_method(s)?;
    s.answered();
    match (opened.class, opened.method) {
        (10, 41) => s.reached(ProbeReach::Commands, "Connection.Open-Ok for vhost /"),
        (10, 50) => {
            s.reached(ProbeReach::AuthRequired, "refused: vhost / not allowed");
            return Err(Fail::Done);
        }
        _ => return Err(Fail::Malformed("expected Connection.Open-Ok")),
    }
    let mut close = 200u16.to_be_bytes().to_vec();
    short_str(&mut close, "vexxy probe done");
    close.extend_from_slice(&[0, 0, 0, 0]);
    s.send(&method_frame(10, 50, &close))?;
    let closed = read_method(s)?;
    s.answered();
    if (closed.class, closed.method) == (10, 51) {
        s.reached(
            ProbeReach::Commands,
            "Connection.Open-Ok for vhost /; closed cleanly",
        );
    }
    Ok(())
}

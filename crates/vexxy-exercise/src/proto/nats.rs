//! NATS: read `INFO`, send `CONNECT {}` and `PING`, expect `PONG`; then
//! `SUB`/`PUB` on a random subject and check the message comes back.

use vexxy_model::ProbeReach;

use super::{token, Fail, Session};

/// The longest protocol line read (`INFO` carries a JSON object).
const MAX_LINE: usize = 64 * 1024;
/// Most lines read while waiting for one answer.
const MAX_LINES: usize = 64;

/// Reads lines until `PONG`; counts `MSG`s. `Err(Done)` on `-ERR`.
fn until_pong(s: &mut Session<'_>, messages: &mut u64) -> Result<(), Fail> {
    for _ in 0..MAX_LINES {
        let line = s.read_line(MAX_LINE)?;
        if line == b"PONG" {
            return Ok(());
        }
        if line == b"PING" {
            s.write_raw(b"PONG\r\n")?;
        } else if line.starts_with(b"-ERR") {
            s.answered();
            let auth = line
                .windows(13)
                .any(|w| w.eq_ignore_ascii_case(b"authorization"));
            if auth {
                s.reached(ProbeReach::AuthRequired, "refused: authorization required");
            } else {
                s.reached(ProbeReach::Answered, "CONNECT answered with an error");
            }
            return Err(Fail::Done);
        } else if line.starts_with(b"MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let size = std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or(Fail::Malformed("MSG size"))?;
            s.read_exact(size + 2)?;
            *messages += 1;
        } else if line != b"+OK" {
            return Err(Fail::Malformed("unexpected line"));
        }
    }
    Err(Fail::Malformed("no PONG"))
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    let info = s.read_line(MAX_LINE)?;
    if !info.starts_with(b"INFO ") {
        return Err(Fail::Malformed("expected INFO"));
    }
    s.reached(ProbeReach::Answered, "INFO read");
    s.send(
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"vexxy-exercise\",\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1}\r\n",
    )?;
    s.send(b"PING\r\n")?;
    let mut messages = 0;
    until_pong(s, &mut messages)?;
    s.answered();
    s.reached(ProbeReach::Handshake, "INFO read; CONNECT accepted (PONG)");
    let subject = format!("vexxy.probe.{}", token());
    s.send(format!("SUB {subject} 1\r\n").as_bytes())?;
    s.send(format!("PUB {subject} 5\r\nvexxy\r\n").as_bytes())?;
    s.send(b"PING\r\n")?;
    until_pong(s, &mut messages)?;
    s.answered();
    if messages > 0 {
        s.answered();
    }
    s.reached(
        ProbeReach::Commands,
        format!(
            "INFO read; CONNECT accepted (PONG); SUB/PUB {}",
            if messages > 0 {
                "message delivered back"
            } else {
                "message not delivered"
            }
        ),
    );
    let _ = s.write_raw(b"UNSUB 1\r\n");
    Ok(())
}

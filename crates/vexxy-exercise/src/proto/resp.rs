//! RESP (Redis and compatibles): `PING`, `INFO`, `SET`/`GET`/`DEL` of a
//! random key with a 60 s expiry, `COMMAND COUNT`.

use vexxy_model::ProbeReach;

use super::{token, Fail, Session, MAX_FRAME_BYTES};

/// Deepest nesting of arrays read.
const MAX_DEPTH: usize = 8;
/// Most elements read in one array (over all levels).
const MAX_ELEMENTS: usize = 100_000;

/// The kind of a reply, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+…`: `true` when it was `PONG` or `OK`.
    Simple(bool),
    /// `-…`: `true` when it asks for authentication (`NOAUTH`, `WRONGPASS`).
    Error(bool),
    Integer(i64),
    /// `$n` (`None` for a null bulk string).
    Bulk(Option<usize>),
    Array,
}

fn command(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    s.send(&command(&["PING"]))?;
    match read_reply(s)? {
        Reply::Simple(_) => {
            s.answered();
            s.reached(ProbeReach::Handshake, "PING answered");
        }
        Reply::Error(true) => {
            s.answered();
            s.reached(ProbeReach::AuthRequired, "refused: authentication required");
            return Err(Fail::Done);
        }
        Reply::Error(false) => {
            s.answered();
            s.reached(ProbeReach::Answered, "PING answered with an error");
            return Err(Fail::Done);
        }
        _ => return Err(Fail::Malformed("PING reply")),
    }
    let key = format!("vexxy:probe:{}", token());
    let steps: [(&[&str], &str); 5] = [
        (&["INFO"], "INFO"),
        (&["SET", &key, "vexxy", "EX", "60"], "SET"),
        (&["GET", &key], "GET"),
        (&["DEL", &key], "DEL"),
        (&["COMMAND", "COUNT"], "COMMAND COUNT"),
    ];
    let mut ok = Vec::new();
    for (args, name) in steps {
        s.send(&command(args))?;
        let reply = read_reply(s)?;
        s.answered();
        if !matches!(reply, Reply::Error(_)) {
            ok.push(name);
        }
        s.reached(
            ProbeReach::Commands,
            format!("PING answered; commands answered: {}", ok.join(", ")),
        );
    }
    Ok(())
}

/// Reads one reply, skipping its content (bounded).
pub(crate) fn read_reply(s: &mut Session<'_>) -> Result<Reply, Fail> {
    let mut elements = 0;
    read_value(s, 0, &mut elements)
}

fn read_value(s: &mut Session<'_>, depth: usize, elements: &mut usize) -> Result<Reply, Fail> {
    let line = s.read_line(64 * 1024)?;
    let (&kind, rest) = line.split_first().ok_or(Fail::Malformed("empty line"))?;
    let number = || -> Result<i64, Fail> {
        std::str::from_utf8(rest)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(Fail::Malformed("length"))
    };
    match kind {
        b'+' => Ok(Reply::Simple(rest == b"PONG" || rest == b"OK")),
        b'-' => Ok(Reply::Error(
            rest.starts_with(b"NOAUTH") || rest.starts_with(b"WRONGPASS"),
        )),
        b':' => Ok(Reply::Integer(number()?)),
        b'$' => {
            let n = number()?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let n = usize::try_from(n).map_err(|_| Fail::TooLarge)?;
            if n > MAX_FRAME_BYTES {
                return Err(Fail::TooLarge);
            }
            let body = s.read_exact(n + 2)?;
            if !body.ends_with(b"\r\n") {
                return Err(Fail::Malformed("bulk string end"));
            }
            Ok(Reply::Bulk(Some(n)))
        }
        b'*' => {
            let n = number()?;
            if depth >= MAX_DEPTH {
                return Err(Fail::Malformed("nesting"));
            }
            for _ in 0..n.max(0) {
                *elements += 1;
                if *elements > MAX_ELEMENTS {
                    return Err(Fail::TooLarge);
                }
                read_value(s, depth + 1, elements)?;
            }
            Ok(Reply::Array)
        }
        _ => Err(Fail::Malformed("reply type")),
    }
}

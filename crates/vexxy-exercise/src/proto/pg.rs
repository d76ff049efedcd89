//! PostgreSQL frontend/backend protocol v3: `SSLRequest` (and a TLS
//! handshake when accepted) on one connection; a `StartupMessage` as
//! `postgres` on another. A request for a password ends the probe; a
//! server that lets the probe in answers `SELECT version()` and two
//! catalog queries.

use vexxy_model::ProbeReach;

use super::wire::be32;
use super::{tls, Fail, Session, MAX_FRAME_BYTES};

/// Queries run once in: read-only, answered by any PostgreSQL.
const QUERIES: &[&str] = &[
    "SELECT version()",
    "SELECT count(*) FROM pg_catalog.pg_class",
    "SELECT datname FROM pg_catalog.pg_database",
];

/// Most backend messages read per query (a `RowDescription`, rows, …).
const MAX_MESSAGES: usize = 4096;

/// `SSLRequest`, then a TLS handshake when the server says `S`.
pub(crate) fn probe_ssl(s: &mut Session<'_>) -> Result<(), Fail> {
    let mut request = 8u32.to_be_bytes().to_vec();
    request.extend_from_slice(&80_877_103u32.to_be_bytes());
    s.send(&request)?;
    let answer = s.read_exact(1)?;
    s.answered();
    match answer[0] {
        b'S' => {
            s.reached(ProbeReach::Answered, "ssl: accepted");
            let mut conn = tls::handshake(s, &[b"postgresql"])?;
            s.reached(
                ProbeReach::Handshake,
                format!("ssl: accepted; {}", s.outcome_text()),
            );
            conn.send_close_notify();
            if let Ok(stream) = s.stream() {
                let _ = conn.write_tls(stream);
            }
            Ok(())
        }
        b'N' => {
            s.reached(ProbeReach::Answered, "ssl: not offered");
            Ok(())
        }
        b'E' => {
            s.reached(ProbeReach::Answered, "ssl: error response");
            Ok(())
        }
        _ => Err(Fail::Malformed("SSLRequest answer")),
    }
}

/// A backend message: its type and body.
fn read_message(s: &mut Session<'_>) -> Result<(u8, Vec<u8>), Fail> {
    let head = s.read_exact(5)?;
    let len = be32(&head, 1).ok_or(Fail::Malformed("message length"))?;
    let len = usize::try_from(len).map_err(|_| Fail::TooLarge)?;
    if len < 4 {
        return Err(Fail::Malformed("message length"));
    }
    if len - 4 > MAX_FRAME_BYTES {
        return Err(Fail::TooLarge);
    }
    Ok((head[0], s.read_exact(len - 4)?))
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    let len = u32::try_from(body.len() + 4).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    let mut body = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
    for (k, v) in [
        ("user", "postgres"),
        ("database", "postgres"),
        ("application_name", "vexxy-exercise"),
    ] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut startup = u32::try_from(body.len() + 4)
        .unwrap_or(u32::MAX)
        .to_be_bytes()
        .to_vec();
    startup.extend_from_slice(&body);
    s.send(&startup)?;
    // authentication, then parameters until ReadyForQuery
    let mut answered = false;
    let mut authenticated = false;
    for _ in 0..MAX_MESSAGES {
        let (kind, body) = read_message(s)?;
        if !answered {
            answered = true;
            s.answered();
        }
        match kind {
            b'R' => match be32(&body, 0) {
                Some(0) => {
                    authenticated = true;
                    s.reached(ProbeReach::Handshake, "authenticated (no password)");
                }
                Some(code) => {
                    let method = match code {
                        3 => "cleartext",
                        5 => "md5",
                        10 => "scram",
                        _ => "other",
                    };
                    s.reached(
                        ProbeReach::AuthRequired,
                        format!("refused: password required ({method})"),
                    );
                    let _ = s.write_raw(&message(b'X', &[]));
                    return Err(Fail::Done);
                }
                None => return Err(Fail::Malformed("authentication request")),
            },
            b'E' => {
                s.reached(ProbeReach::Answered, "startup refused with an error");
                return Err(Fail::Done);
            }
            b'Z' => break,
            b'S' | b'K' | b'N' | b'v' => {}
            _ => return Err(Fail::Malformed("startup message")),
        }
    }
    if !authenticated {
        return Err(Fail::Malformed("startup without authentication"));
    }
    let mut ok = 0;
    for query in QUERIES {
        let mut text = query.as_bytes().to_vec();
        text.push(0);
        s.send(&message(b'Q', &text))?;
        let mut failed = false;
        let mut done = false;
        for _ in 0..MAX_MESSAGES {
            let (kind, _) = read_message(s)?;
            match kind {
                b'E' => failed = true,
                b'Z' => {
                    done = true;
                    break;
                }
                _ => {}
            }
        }
        if !done {
            return Err(Fail::TooLarge);
        }
        s.answered();
        if !failed {
            ok += 1;
        }
        s.reached(
            ProbeReach::Commands,
            format!(
                "authenticated (no password); {ok} of {} queries answered",
                QUERIES.len()
            ),
        );
    }
    let _ = s.write_raw(&message(b'X', &[]));
    Ok(())
}

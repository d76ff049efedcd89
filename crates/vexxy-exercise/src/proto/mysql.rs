//! MySQL/MariaDB: read the server greeting, log in as `root` with an empty
//! password (`mysql_native_password`); once in, `SELECT VERSION()` and a
//! catalog count, then `COM_QUIT`.

use vexxy_model::ProbeReach;

use super::{Fail, Session, MAX_FRAME_BYTES};

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_LONG_FLAG: u32 = 0x4;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_TRANSACTIONS: u32 = 0x2000;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;

const QUERIES: &[&str] = &[
    "SELECT VERSION()",
    "SELECT COUNT(*) FROM information_schema.TABLES",
];

/// Most packets read for one answer.
const MAX_PACKETS: usize = 4096;

/// Whether `bytes` start like a MySQL server greeting (protocol 10) or
/// its refusal (an error packet with sequence 0).
pub(crate) fn is_greeting(bytes: &[u8]) -> bool {
    if bytes.len() < 5 {
        return false;
    }
    let len = usize::from(bytes[0]) | usize::from(bytes[1]) << 8 | usize::from(bytes[2]) << 16;
    bytes[3] == 0 && (1..64 * 1024).contains(&len) && (bytes[4] == 10 || bytes[4] == 0xff)
}

/// A packet: its sequence number and payload.
fn read_packet(s: &mut Session<'_>) -> Result<(u8, Vec<u8>), Fail> {
    let head = s.read_exact(4)?;
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    if len > MAX_FRAME_BYTES {
        return Err(Fail::TooLarge);
    }
    Ok((head[3], s.read_exact(len)?))
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap_or(0).to_le_bytes();
    let mut out = vec![len[0], len[1], len[2], seq];
    out.extend_from_slice(payload);
    out
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    let (_, greeting) = read_packet(s)?;
    match greeting.first() {
        Some(10) => {}
        Some(0xff) => {
            s.reached(
                ProbeReach::Answered,
                "greeting: connection refused by the server",
            );
            return Err(Fail::Done);
        }
        _ => return Err(Fail::Malformed("greeting")),
    }
    s.reached(ProbeReach::Answered, "greeting read");
    let mut response = Vec::new();
    let caps = CLIENT_LONG_PASSWORD
        | CLIENT_LONG_FLAG
        | CLIENT_PROTOCOL_41
        | CLIENT_TRANSACTIONS
        | CLIENT_SECURE_CONNECTION
        | CLIENT_PLUGIN_AUTH;
    response.extend_from_slice(&caps.to_le_bytes());
    response.extend_from_slice(&(16u32 << 20).to_le_bytes());
    response.push(0x21); // utf8_general_ci
    response.extend_from_slice(&[0; 23]);
    response.extend_from_slice(b"root\0");
    response.push(0); // empty auth response: the empty password
    response.extend_from_slice(b"mysql_native_password\0");
    s.send(&packet(1, &response))?;
    let mut seq;
    let mut answer;
    (seq, answer) = read_packet(s)?;
    s.answered();
    // an auth switch (or more data) asks for the empty password again
    for _ in 0..3 {
        match answer.first() {
            Some(0xfe) => {
                s.send(&packet(seq.wrapping_add(1), &[]))?;
            }
            Some(0x01) if answer.get(1) == Some(&0x03) => {
                // caching_sha2 fast auth succeeded; the OK follows
            }
            Some(0x01) => {
                s.reached(
                    ProbeReach::AuthRequired,
                    "refused: full authentication required",
                );
                return Err(Fail::Done);
            }
            _ => break,
        }
        (seq, answer) = read_packet(s)?;
        s.answered();
    }
    match answer.first() {
        Some(0x00) => s.reached(ProbeReach::Handshake, "authenticated (root, no password)"),
        Some(0xff) => {
            s.reached(ProbeReach::AuthRequired, "refused: access denied");
            return Err(Fail::Done);
        }
        _ => return Err(Fail::Malformed("login answer")),
    }
    let mut ok = 0;
    for query in QUERIES {
        let mut payload = vec![0x03];
        payload.extend_from_slice(query.as_bytes());
        s.send(&packet(0, &payload))?;
        if read_result(s)? {
            ok += 1;
        }
        s.answered();
        s.reached(
            ProbeReach::Commands,
            format!(
                "authenticated (root, no password); {ok} of {} queries answered",
                QUERIES.len()
            ),
        );
    }
    let _ = s.write_raw(&packet(0, &[0x01]));
    Ok(())
}

/// Reads a query's answer (OK, ERR or a result set ending in its second
/// EOF); `true` unless it was an error.
fn read_result(s: &mut Session<'_>) -> Result<bool, Fail> {
    let (_, first) = read_packet(s)?;
    match first.first() {
        Some(0x00) => return Ok(true),
        Some(0xff) => return Ok(false),
        Some(_) => {}
        None => return Err(Fail::Malformed("result")),
    }
    let mut eofs = 0;
    for _ in 0..MAX_PACKETS {
        let (_, p) = read_packet(s)?;
        match p.first() {
            Some(0xfe) if p.len() < 9 => {
                eofs += 1;
                if eofs == 2 {
                    return Ok(true);
                }
            }
            Some(0xff) => return Ok(false),
            _ => {}
        }
    }
    Err(Fail::TooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greetings_are_recognised() {
        let mut greeting = vec![0x4a, 0, 0, 0, 10];
        greeting.extend_from_slice(b"10.11.6-MariaDB\0");
        assert!(is_greeting(&greeting));
        assert!(is_greeting(&[0x10, 0, 0, 0, 0xff, 0x6a, 0x04]));
        assert!(!is_greeting(b"SSH-2.0-OpenSSH"));
        assert!(!is_greeting(b"INFO {}"));
        assert!(!is_greeting(&[1, 0, 0]));
    }
}

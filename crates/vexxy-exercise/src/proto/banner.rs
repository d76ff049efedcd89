//! Servers that speak first: telling their protocol from the banner, and
//! answering the common ones (SSH identification, SMTP `EHLO`, FTP `SYST`,
//! POP3 `CAPA`, IMAP `CAPABILITY`) before saying goodbye.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use vexxy_model::ProbeReach;

use super::{mysql, Fail, Greeting, ProtocolBudget, Session, BANNER_WAIT};

/// The most of a banner read.
const MAX_BANNER: usize = 4096;
/// Most reply lines read for one command.
const MAX_LINES: usize = 64;

/// Connects and waits [`BANNER_WAIT`] for the server to speak; what it said
/// names the probe (`None`: it stayed silent or could not be reached).
pub(crate) fn identify(
    addr: SocketAddr,
    budget: &ProtocolBudget,
    stop: &AtomicBool,
) -> Option<Greeting> {
    let deadline = budget.deadline.min(Instant::now() + budget.per_probe);
    let mut s = Session::connect(addr, budget, deadline, stop).ok()?;
    let banner = s.read_available(BANNER_WAIT, MAX_BANNER).ok()?;
    if banner.is_empty() {
        return None;
    }
    Some(if mysql::is_greeting(&banner) {
        Greeting::Mysql
    } else if banner.starts_with(b"INFO ") {
        Greeting::Nats
    } else {
        Greeting::Other
    })
}

/// Which banner protocol `banner` shows.
fn kind(banner: &[u8]) -> &'static str {
    let has = |needle: &[u8]| banner.windows(needle.len()).any(|w| w == needle);
    if banner.starts_with(b"SSH-") {
        "ssh"
    } else if banner.starts_with(b"220") && (has(b"SMTP") || has(b"smtp")) {
        "smtp"
    } else if banner.starts_with(b"220") {
        "ftp"
    } else if banner.starts_with(b"+OK") {
        "pop3"
    } else if banner.starts_with(b"* OK") {
        "imap"
    } else {
        "unknown"
    }
}

/// Sends `command` and reads reply lines until `last` says it is the final one.
fn command(s: &mut Session<'_>, command: &[u8], last: impl Fn(&[u8]) -> bool) -> Result<(), Fail> {
    s.send(command)?;
    for _ in 0..MAX_LINES {
        let line = s.read_line(MAX_BANNER)?;
        if last(&line) {
            s.answered();
            return Ok(());
        }
    }
    Err(Fail::Malformed("reply too long"))
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    let wait = BANNER_WAIT * 3;
    let banner = s.read_available(wait, MAX_BANNER)?;
    if banner.is_empty() {
        return Err(Fail::Timeout);
    }
    let kind = kind(&banner);
    s.reached(ProbeReach::Answered, format!("banner: {kind}"));
    // a multi-line reply code: `250-…` continues, `250 …` ends
    let final_line = |code: &'static [u8]| {
        move |line: &[u8]| line.starts_with(code) && line.get(3) != Some(&b'-')
    };
    match kind {
        "ssh" => {
            s.send(b"SSH-2.0-vexxy_exercise\r\n")?;
            let kex = s.read_available(s_timeout(), MAX_BANNER)?;
            if !kex.is_empty() {
                s.answered();
                s.reached(
                    ProbeReach::Handshake,
                    "banner: ssh; identification exchanged, key exchange offered",
                );
            }
        }
        "smtp" => {
            // the banner may have been multi-line; whatever is left is skipped
            command(s, b"EHLO vexxy.invalid\r\n", final_line(b"250"))?;
            s.reached(ProbeReach::Commands, "banner: smtp; EHLO answered");
            let _ = command(s, b"QUIT\r\n", |_| true);
        }
        "ftp" => {
            command(s, b"SYST\r\n", |l| l.get(3) != Some(&b'-'))?;
            s.reached(ProbeReach::Commands, "banner: ftp; SYST answered");
            let _ = command(s, b"QUIT\r\n", |_| true);
        }
        "pop3" => {
            command(s, b"CAPA\r\n", |l| l == b"." || l.starts_with(b"-ERR"))?;
            s.reached(ProbeReach::Commands, "banner: pop3; CAPA answered");
            let _ = command(s, b"QUIT\r\n", |_| true);
        }
        "imap" => {
            command(s, b"a1 CAPABILITY\r\n", |l| l.starts_with(b"a1 "))?;
            s.reached(ProbeReach::Commands, "banner: imap; CAPABILITY answered");
            let _ = command(s, b"a2 LOGOUT\r\n", |l| l.starts_with(b"a2 "));
        }
        _ => {}
    }
    Ok(())
}

fn s_timeout() -> std::time::Duration {
    BANNER_WAIT * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banners_name_protocols() {
        assert_eq!(kind(b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n"), "ssh");
        assert_eq!(kind(b"220 mail.example ESMTP Postfix\r\n"), "smtp");
        assert_eq!(kind(b"220 (vsFTPd 3.0.3)\r\n"), "ftp");
        assert_eq!(kind(b"+OK Dovecot ready.\r\n"), "pop3");
        assert_eq!(kind(b"* OK [CAPABILITY IMAP4rev1] ready\r\n"), "imap");
        assert_eq!(kind(b"\x00\x01garbage"), "unknown");
    }
}

//! One probe's connection: bounded reads and writes, message counting and
//! how far the probe got.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vexxy_model::{ProbeReach, ProbeRecord};

use super::{ProtocolBudget, MAX_FRAME_BYTES};

/// The longest a blocking read waits before the stop flag is checked again.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Why a probe ended before its script did. Never carries remote content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// Connecting failed.
    Connect(io::ErrorKind),
    /// A read or write timed out (or the probe's deadline passed).
    Timeout,
    /// The server closed the connection.
    Closed,
    /// Another socket error.
    Io(io::ErrorKind),
    /// The server announced a frame larger than [`MAX_FRAME_BYTES`].
    TooLarge,
    /// The server answered something the protocol does not allow here.
    Malformed(&'static str),
    /// The probe's message budget is spent.
    Budget,
    /// The caller's stop flag was set.
    Stopped,
    /// The probe ends here on purpose (credentials required, …); the
    /// session's outcome already says why.
    Done,
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(kind) => write!(f, "connect failed: {kind}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Closed => f.write_str("closed by the server"),
            Self::Io(kind) => write!(f, "socket error: {kind}"),
            Self::TooLarge => f.write_str("frame too large"),
            Self::Malformed(what) => write!(f, "malformed answer: {what}"),
            Self::Budget => f.write_str("message budget spent"),
            Self::Stopped => f.write_str("stopped"),
            Self::Done => f.write_str("done"),
        }
    }
}

fn io_fail(e: &io::Error) -> Fail {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::Timeout,
        io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Fail::Closed,
        kind => Fail::Io(kind),
    }
}

/// A probe's connection and its progress.
#[derive(Debug)]
pub(crate) struct Session<'a> {
    stream: TcpStream,
    /// Read but not yet consumed.
    buf: Vec<u8>,
    deadline: Instant,
    read_timeout: Duration,
    max_requests: u32,
    stop: &'a AtomicBool,
    reach: ProbeReach,
    outcome: String,
    requests: u64,
    answered: u64,
}

impl<'a> Session<'a> {
    /// Connects to `addr` within the budget's connect timeout.
    pub(crate) fn connect(
        addr: SocketAddr,
        budget: &ProtocolBudget,
        deadline: Instant,
        stop: &'a AtomicBool,
    ) -> Result<Self, Fail> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Fail::Timeout);
        }
        let stream = TcpStream::connect_timeout(&addr, remaining.min(budget.connect_timeout))
            .map_err(|e| Fail::Connect(e.kind()))?;
        let _ = stream.set_nodelay(true);
        Ok(Self {
            stream,
            buf: Vec::new(),
            deadline,
            read_timeout: budget.read_timeout,
            max_requests: budget.max_requests_per_probe,
            stop,
            reach: ProbeReach::Connected,
            outcome: "connected, no answer".to_owned(),
            requests: 0,
            answered: 0,
        })
    }

    /// Records that the probe got this far.
    pub(crate) fn reached(&mut self, reach: ProbeReach, outcome: impl Into<String>) {
        self.reach = self.reach.max(reach);
        self.outcome = outcome.into();
    }

    /// The read timeout and the stop flag, for loops of their own.
    pub(crate) fn limits(&self) -> (Duration, &'a AtomicBool) {
        (self.read_timeout, self.stop)
    }

    /// What the probe reached so far, in words.
    pub(crate) fn outcome_text(&self) -> String {
        self.outcome.clone()
    }

    /// Counts one answered message.
    pub(crate) fn answered(&mut self) {
        self.answered += 1;
    }

    /// The time left for one read or write: the read timeout, cut at the
    /// deadline.
    fn io_timeout(&self) -> Result<Duration, Fail> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(Fail::Stopped);
        }
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(Fail::Timeout);
        }
        Ok(remaining.min(self.read_timeout))
    }

    /// Sends one protocol message (counted against the budget).
    pub(crate) fn send(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        if self.requests >= u64::from(self.max_requests) {
            return Err(Fail::Budget);
        }
        self.requests += 1;
        self.write_raw(bytes)
    }

    /// Writes bytes that are part of a message already counted.
    pub(crate) fn write_raw(&mut self, bytes: &[u8]) -> Result<(), Fail> {
        let timeout = self.io_timeout()?;
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| io_fail(&e))?;
        self.stream.write_all(bytes).map_err(|e| io_fail(&e))
    }

    /// Reads more bytes into the buffer; fails when the buffer would
    /// exceed `limit`.
    fn fill(&mut self, limit: usize) -> Result<(), Fail> {
        if self.buf.len() >= limit {
            return Err(Fail::TooLarge);
        }
        let since = Instant::now();
        self.io_timeout()?;
        let mut chunk = [0u8; 8192];
        let want = chunk.len().min(limit - self.buf.len());
        loop {
            // short slices, so the stop flag is seen within STOP_POLL
            let slice = self.io_timeout()?.min(STOP_POLL);
            self.stream
                .set_read_timeout(Some(slice))
                .map_err(|e| io_fail(&e))?;
            match self.stream.read(&mut chunk[..want]) {
                Ok(0) => return Err(Fail::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Err(e) if io_fail(&e) == Fail::Timeout => self.waited(since)?,
                Err(e) => return Err(io_fail(&e)),
            }
        }
    }

    /// After a read slice timed out: `Err` when the stop flag is set, the
    /// deadline passed or the read has waited its full timeout since
    /// `since`.
    pub(crate) fn waited(&self, since: Instant) -> Result<(), Fail> {
        self.io_timeout()?;
        if since.elapsed() >= self.read_timeout {
            return Err(Fail::Timeout);
        }
        Ok(())
    }

    /// Exactly `n` bytes (at most [`MAX_FRAME_BYTES`]).
    pub(crate) fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, Fail> {
        if n > MAX_FRAME_BYTES {
            return Err(Fail::TooLarge);
        }
        while self.buf.len() < n {
            self.fill(n)?;
        }
        let rest = self.buf.split_off(n);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// One line ending in `\n` (without `\r\n`), at most `max` bytes.
    pub(crate) fn read_line(&mut self, max: usize) -> Result<Vec<u8>, Fail> {
        let max = max.min(MAX_FRAME_BYTES);
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.buf.len() > max {
                return Err(Fail::TooLarge);
            }
            self.fill(max + 2)?;
        }
    }

    /// Whatever arrives within `wait` (at most `max` bytes); empty when
    /// nothing did.
    pub(crate) fn read_available(&mut self, wait: Duration, max: usize) -> Result<Vec<u8>, Fail> {
        let saved = self.read_timeout;
        self.read_timeout = wait.min(saved);
        let result = match self.fill(max) {
            Ok(()) | Err(Fail::Timeout) => Ok(()),
            Err(e) => Err(e),
        };
        self.read_timeout = saved;
        result?;
        Ok(std::mem::take(&mut self.buf))
    }

    /// The stream, for a TLS session over it (the buffer must be empty),
    /// its reads and writes timing out in [`STOP_POLL`] slices: the caller
    /// retries while [`Session::waited`] allows.
    pub(crate) fn stream(&mut self) -> Result<&mut TcpStream, Fail> {
        let timeout = self.io_timeout()?.min(STOP_POLL);
        self.stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| io_fail(&e))?;
        self.stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| io_fail(&e))?;
        Ok(&mut self.stream)
    }

    /// Closes the connection and writes the result into `record`.
    pub(crate) fn finish(self, result: Result<(), Fail>, record: &mut ProbeRecord) {
        let _ = self.stream.shutdown(Shutdown::Both);
        record.reach = self.reach;
        record.requests = self.requests;
        record.answered = self.answered;
        record.outcome = match result {
            Ok(()) | Err(Fail::Done) => self.outcome,
            Err(fail) => format!("{}; then {fail}", self.outcome),
        };
    }
}

/// A big-endian `u16` at `at`, when there.
pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// A big-endian `u32` at `at`, when there.
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

//! A real TLS handshake (rustls, certificates not verified: the server is
//! our own sandboxed workload), then one HTTP/1.1 request over it when the
//! server speaks HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use vexxy_model::ProbeReach;

use super::{Fail, Session};

/// Accepts any certificate: the probe exercises the server's TLS code, it
/// does not authenticate the server.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn config(alpn: &[&[u8]]) -> Result<ClientConfig, Fail> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|_| Fail::Malformed("tls configuration"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Runs a TLS handshake over `stream`; the session's reach says how far
/// it got.
pub(crate) fn handshake(s: &mut Session<'_>, alpn: &[&[u8]]) -> Result<ClientConnection, Fail> {
    let name = ServerName::try_from("localhost").map_err(|_| Fail::Malformed("server name"))?;
    let mut conn = ClientConnection::new(Arc::new(config(alpn)?), name)
        .map_err(|_| Fail::Malformed("tls client"))?;
    // the ClientHello is the one message counted
    s.send(&[])?;
    let mut read_any = false;
    let mut since = std::time::Instant::now();
    while conn.is_handshaking() {
        let stream: &mut TcpStream = s.stream()?;
        match conn.complete_io(stream) {
            Ok((read, wrote)) => {
                if read + wrote > 0 {
                    since = std::time::Instant::now();
                }
                if read > 0 && !read_any {
                    read_any = true;
                    s.answered();
                    s.reached(ProbeReach::Answered, "tls: server answered the ClientHello");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                s.waited(since)?;
            }
            Err(e) => {
                return Err(match e.kind() {
                    std::io::ErrorKind::InvalidData => {
                        if read_any {
                            Fail::Malformed("tls handshake")
                        } else {
                            Fail::Malformed("not tls")
                        }
                    }
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Fail::Timeout,
                    std::io::ErrorKind::UnexpectedEof => Fail::Closed,
                    kind => Fail::Io(kind),
                });
            }
        }
    }
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2",
        _ => "TLS",
    };
    s.reached(
        ProbeReach::Handshake,
        format!("tls: handshake completed ({version})"),
    );
    Ok(conn)
}

pub(crate) fn probe(s: &mut Session<'_>) -> Result<(), Fail> {
    let mut conn = handshake(s, &[b"http/1.1"])?;
    let done = s.outcome_text();
    let (read_timeout, stop) = s.limits();
    // HTTP/1.1 over the session when the server speaks it
    s.send(&[])?;
    let request = b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: vexxy-exercise\r\nConnection: close\r\n\r\n";
    let stream = s.stream()?;
    let mut tls = rustls::Stream::new(&mut conn, stream);
    tls.write_all(request).map_err(|_| Fail::Closed)?;
    let mut head = [0u8; 64];
    let mut got = 0;
    let since = std::time::Instant::now();
    let mut waited = Ok(());
    while got < 12 {
        match tls.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if since.elapsed() >= read_timeout || stop.load(Ordering::Relaxed) {
                    waited = Err(Fail::Timeout);
                    break;
                }
            }
            Err(_) => break,
        }
    }
    waited?;
    let head = &head[..got];
    let status = head
        .strip_prefix(b"HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| std::str::from_utf8(code).ok())
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) => {
            s.answered();
            s.reached(
                ProbeReach::Commands,
                format!("{done}; http over tls answered {code}"),
            );
        }
        None => s.reached(ProbeReach::Handshake, format!("{done}; no http over tls")),
    }
    conn.send_close_notify();
    if let Ok(stream) = s.stream() {
        let _ = conn.write_tls(stream);
    }
    Ok(())
}

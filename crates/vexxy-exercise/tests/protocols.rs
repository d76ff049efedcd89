//! Protocol probes against real servers on this machine's loopback (Redis,
//! PostgreSQL with trust auth, MariaDB with an empty root password,
//! RabbitMQ with guest/guest, Mosquitto, NATS: CI runs them too, so a
//! missing one fails there), an in-process TLS server, an in-process HTTP/2
//! gRPC health server, and hostile servers (garbage, silence, huge frames).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vexxy_exercise::{
    probe_protocols, probe_protocols_unless, ProtocolBudget, ProtocolHints, ProtocolStats, Target,
};
use vexxy_model::{ProbeReach, ProbeRecord};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn target(ports: &[u16]) -> Target {
    Target::loopback(None, ports.to_vec())
}

fn budget(within: Duration) -> ProtocolBudget {
    ProtocolBudget::until(Instant::now() + within)
}

/// `true` when a service listens on `port`; else skip (or fail in CI).
fn require_service(port: u16, name: &str) -> bool {
    let addr = SocketAddr::new(LOCALHOST, port);
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Ok(_) => true,
        Err(e) => {
            vexxy_testkit::skip_or_fail(format!(
                "{name} is not listening on 127.0.0.1:{port} ({e})"
            ));
            false
        }
    }
}

fn probe(port: u16, hints: &[&str]) -> ProtocolStats {
    let started = Instant::now();
    let stats = probe_protocols(
        &target(&[port]),
        &[port],
        &ProtocolHints::from_args(hints),
        &budget(Duration::from_secs(20)),
    )
    .unwrap();
    for p in &stats.probes {
        println!(
            "{} {}: {:?} — {} ({} sent, {} answered, {} ms)",
            p.port, p.protocol, p.reach, p.outcome, p.requests, p.answered, p.duration_ms
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    stats
}

fn only<'a>(stats: &'a ProtocolStats, protocol: &str) -> &'a ProbeRecord {
    let found: Vec<_> = stats
        .probes
        .iter()
        .filter(|p| p.protocol == protocol)
        .collect();
    assert_eq!(found.len(), 1, "{:?}", stats.probes);
    found[0]
}

// ---------------------------------------------------------------------------
// real services

#[test]
fn redis_answers_ping_info_set_get_and_command_count() {
    if !require_service(6379, "redis") {
        return;
    }
    let stats = probe(6379, &[]);
    let resp = only(&stats, "resp");
    assert_eq!(resp.reach, ProbeReach::Commands, "{resp:?}");
    assert_eq!(resp.requests, 6);
    assert_eq!(resp.answered, 6);
    assert_eq!(
        resp.outcome,
        "PING answered; commands answered: INFO, SET, GET, DEL, COMMAND COUNT"
    );
}

#[test]
fn postgres_lets_a_trusted_user_in_and_answers_queries() {
    if !require_service(5432, "postgresql") {
        return;
    }
    let stats = probe(5432, &[]);
    let ssl = only(&stats, "postgresql-ssl");
    assert!(ssl.reach >= ProbeReach::Answered, "{ssl:?}");
    assert!(ssl.outcome.starts_with("ssl: "), "{ssl:?}");
    if ssl.outcome.starts_with("ssl: accepted") {
        assert_eq!(ssl.reach, ProbeReach::Handshake, "{ssl:?}");
    }
    let pg = only(&stats, "postgresql");
    assert_eq!(pg.reach, ProbeReach::Commands, "{pg:?}");
    assert_eq!(
        pg.outcome,
        "authenticated (no password); 3 of 3 queries answered"
    );
    assert_eq!(pg.requests, 4);
    assert_eq!(pg.answered, 4);
}

#[test]
fn mariadb_greets_lets_root_in_and_answers_select_version() {
    if !require_service(3306, "mariadb") {
        return;
    }
    // nothing names port 3306 here but the greeting
    let stats = probe(3306, &[]);
    let my = only(&stats, "mysql");
    assert_eq!(my.reach, ProbeReach::Commands, "{my:?}");
    assert_eq!(
        my.outcome,
        "authenticated (root, no password); 2 of 2 queries answered"
    );
}

#[test]
fn rabbitmq_starts_tunes_and_opens_a_connection() {
    if !require_service(5672, "rabbitmq") {
        return;
    }
    let stats = probe(5672, &[]);
    let amqp = only(&stats, "amqp");
    assert_eq!(amqp.reach, ProbeReach::Commands, "{amqp:?}");
    assert_eq!(
        amqp.outcome,
        "Connection.Open-Ok for vhost /; closed cleanly"
    );
    assert_eq!(amqp.requests, 5);
}

#[test]
fn mosquitto_connacks_pings_and_delivers_a_publish() {
    if !require_service(1883, "mosquitto") {
        return;
    }
    let stats = probe(1883, &[]);
    let mqtt = only(&stats, "mqtt");
    assert_eq!(mqtt.reach, ProbeReach::Commands, "{mqtt:?}");
    assert_eq!(
        mqtt.outcome,
        "CONNACK accepted; PINGRESP; SUBSCRIBE granted; PUBLISH delivered back"
    );
}

#[test]
fn nats_sends_info_pongs_and_delivers_a_message() {
    if !require_service(4222, "nats") {
        return;
    }
    let stats = probe(4222, &[]);
    let nats = only(&stats, "nats");
    assert_eq!(nats.reach, ProbeReach::Commands, "{nats:?}");
    assert_eq!(
        nats.outcome,
        "INFO read; CONNECT accepted (PONG); SUB/PUB message delivered back"
    );
}

#[test]
fn hints_pick_the_protocol_on_an_unusual_port() {
    if !require_service(6379, "redis") {
        return;
    }
    // a forwarder on a port nothing names, to the real Redis
    let port = forward_to(6379);
    let stats = probe(port, &["/usr/bin/redis-server", "/etc/redis.conf"]);
    assert_eq!(stats.probes.len(), 1, "{:?}", stats.probes);
    assert_eq!(only(&stats, "resp").reach, ProbeReach::Commands);
    // without hints the fallback finds it too, after TLS fails
    let stats = probe(port, &[]);
    assert_eq!(stats.reach(port), Some(ProbeReach::Commands));
    assert_eq!(
        stats.probes.last().map(|p| p.protocol.as_str()),
        Some("resp")
    );
}

/// A TCP forwarder from a fresh port to `to` (one connection at a time).
fn forward_to(to: u16) -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect((LOCALHOST, to)) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c, mut s) = (client, server);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    port
}

// ---------------------------------------------------------------------------
// TLS: an in-process rustls server

#[test]
fn tls_handshake_completes_and_http_over_tls_answers() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into()),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = handshakes.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let mut tcp = tcp;
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut conn = rustls::ServerConnection::new(config.clone()).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
            if conn.is_handshaking() {
                continue;
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
            let mut request = [0u8; 1024];
            let _ = tls.read(&mut request);
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            let _ = tls.flush();
        }
    });
    // not a well-known TLS port: the fallback tries TLS first
    let stats = probe(port, &[]);
    let tls = only(&stats, "tls");
    assert_eq!(tls.reach, ProbeReach::Commands, "{tls:?}");
    assert!(
        tls.outcome
            .starts_with("tls: handshake completed (TLS 1.3); http over tls answered 204"),
        "{tls:?}"
    );
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
    assert_eq!(
        stats.probes.len(),
        1,
        "the fallback stops at the first answer"
    );
}

// ---------------------------------------------------------------------------
// gRPC health: an in-process HTTP/2 server

#[test]
fn grpc_health_check_is_answered() {
    let listener = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = paths.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((request, mut respond))) = conn.accept().await {
                        seen.lock().unwrap().push(request.uri().path().to_owned());
                        let response = http::Response::builder()
                            .status(200)
                            .header("content-type", "application/grpc")
                            .body(())
                            .unwrap();
                        let mut send = respond.send_response(response, false).unwrap();
                        // HealthCheckResponse { status: SERVING }
                        send.send_data(
                            bytes::Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 0x01]),
                            false,
                        )
                        .unwrap();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        send.send_trailers(trailers).unwrap();
                    }
                });
            }
        });
    });
    let stats = probe(port, &["/app/grpc-server"]);
    let grpc = only(&stats, "grpc-health");
    assert_eq!(grpc.reach, ProbeReach::Commands, "{grpc:?}");
    assert_eq!(grpc.outcome, "health check answered: serving");
    assert_eq!(
        *paths.lock().unwrap(),
        ["/grpc.health.v1.Health/Check".to_owned()]
    );
}

// ---------------------------------------------------------------------------
// hostile servers

/// A server that runs `serve` on every connection, on its own thread.
fn hostile(serve: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            std::thread::spawn(move || serve(tcp));
        }
    });
    port
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs every probe against a server, bounded: 1 s reads, 3 s per probe.
fn every_probe_against(port: u16, within: Duration) -> ProtocolStats {
    let mut budget = budget(within);
    budget.read_timeout = Duration::from_secs(1);
    budget.per_probe = Duration::from_secs(3);
    let mut all = ProtocolStats::default();
    // one hint per protocol: every probe runs against the server
    for hint in [
        "redis",
        "postgres",
        "rabbitmq",
        "mosquitto",
        "grpc",
        "nats",
        "mysql",
    ] {
        let stats = probe_protocols(
            &target(&[port]),
            &[port],
            &ProtocolHints::from_args(&[hint]),
            &budget,
        )
        .unwrap();
        all.probes.extend(stats.probes);
    }
    // and the banner probe and TLS via a silent/any port plan
    let stats = probe_protocols(
        &target(&[port]),
        &[port],
        &ProtocolHints::default(),
        &budget,
    )
    .unwrap();
    all.probes.extend(stats.probes);
    for p in &all.probes {
        println!("{}: {:?} — {}", p.protocol, p.reach, p.outcome);
    }
    all
}

#[test]
fn garbage_ends_every_probe_quickly_without_panicking() {
    let port = hostile(|mut tcp| {
        let mut request = [0u8; 512];
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = tcp.read(&mut request);
        let _ = tcp.write_all(&noise(64 * 1024, u64::from(request[0]) + 7));
    });
    let started = Instant::now();
    let stats = every_probe_against(port, Duration::from_secs(60));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    assert!(!stats.probes.is_empty());
    for p in &stats.probes {
        assert!(p.reach < ProbeReach::Handshake, "{p:?}");
    }
}

#[test]
fn a_silent_server_is_bounded_by_the_read_timeout() {
    let port = hostile(|tcp| {
        std::thread::sleep(Duration::from_secs(30));
        drop(tcp);
    });
    let mut budget = budget(Duration::from_secs(30));
    budget.read_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let stats = probe_protocols(
        &target(&[port]),
        &[port],
        &ProtocolHints::default(),
        &budget,
    )
    .unwrap();
    // banner wait + six fallback probes, each one read timeout (grpc: two)
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(stats.probes.len(), 6, "{:?}", stats.probes);
    for p in &stats.probes {
        assert_eq!(p.reach, ProbeReach::Connected, "{p:?}");
    }
}

#[test]
fn huge_frames_are_refused_not_allocated() {
    // announces enormous lengths in every framing the probes read
    let port = hostile(|mut tcp| {
        let mut request = [0u8; 512];
        let _ = tcp.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = tcp.read(&mut request);
        let mut huge = Vec::new();
        huge.extend_from_slice(b"$2147483647\r\n"); // RESP bulk
        huge.extend_from_slice(&[b'R', 0x7f, 0xff, 0xff, 0xff]); // postgres
        huge.extend_from_slice(&[1, 0, 0, 0x7f, 0xff, 0xff, 0xff]); // amqp
        let _ = tcp.write_all(&huge);
        // then an endless line
        let line = vec![b'A'; 64 * 1024];
        for _ in 0..64 {
            if tcp.write_all(&line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let stats = every_probe_against(port, Duration::from_secs(60));
    assert!(started.elapsed() < Duration::from_secs(40));
    assert!(
        stats
            .probes
            .iter()
            .any(|p| p.outcome.contains("frame too large")),
        "{:?}",
        stats.probes
    );
    for p in &stats.probes {
        assert!(p.reach < ProbeReach::Handshake, "{p:?}");
    }
}

#[test]
fn a_stop_flag_ends_the_probes() {
    let port = hostile(|tcp| {
        std::thread::sleep(Duration::from_secs(30));
        drop(tcp);
    });
    let stop = AtomicBool::new(true);
    let started = Instant::now();
    let stats = probe_protocols_unless(
        &target(&[port]),
        &[port],
        &ProtocolHints::default(),
        &budget(Duration::from_secs(30)),
        &stop,
    )
    .unwrap();
    assert!(stats.probes.is_empty(), "{:?}", stats.probes);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_closed_port_is_unreachable() {
    let port = {
        let l = TcpListener::bind((LOCALHOST, 0)).unwrap();
        l.local_addr().unwrap().port()
    };
    let stats = probe(port, &["redis-server"]);
    let resp = only(&stats, "resp");
    assert_eq!(resp.reach, ProbeReach::Unreachable);
    assert!(resp.outcome.starts_with("connect failed"), "{resp:?}");
}

#[test]
fn a_stop_during_a_probe_ends_it_within_a_poll() {
    let port = hostile(|tcp| {
        std::thread::sleep(Duration::from_secs(30));
        drop(tcp);
    });
    // every probe kind against a server that never answers, stopped 300 ms in
    for hint in [
        "",
        "redis",
        "postgres",
        "rabbitmq",
        "mosquitto",
        "grpc",
        "nats",
    ] {
        let stop = Arc::new(AtomicBool::new(false));
        let setter = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            setter.store(true, Ordering::Relaxed);
        });
        let started = Instant::now();
        let stats = probe_protocols_unless(
            &target(&[port]),
            &[port],
            &ProtocolHints::from_args(&[hint]),
            &budget(Duration::from_secs(30)),
            &stop,
        )
        .unwrap();
        let took = started.elapsed();
        println!("{hint:?}: {took:?} {:?}", stats.probes);
        assert!(took < Duration::from_millis(900), "{hint:?}: {took:?}");
        if let Some(last) = stats.probes.last() {
            assert!(last.outcome.ends_with("then stopped"), "{hint:?}: {last:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// servers that want credentials: every probe stops at `auth_required`

/// A scripted server: `greeting` on connect, then `answer(request)` for
/// every chunk read.
fn scripted(greeting: &'static [u8], answer: fn(&[u8]) -> Vec<u8>) -> u16 {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut tcp = tcp;
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
                if tcp.write_all(greeting).is_err() {
                    return;
                }
                let mut buf = [0u8; 4096];
                while let Ok(n) = tcp.read(&mut buf) {
                    if n == 0 || tcp.write_all(&answer(&buf[..n])).is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A MySQL packet with sequence `seq`.
fn mysql_packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut p = vec![len[0], len[1], len[2], seq];
    p.extend_from_slice(payload);
    p
}

fn mysql_greeting() -> &'static [u8] {
    // protocol 10, version, id, 8 + 13 bytes of scramble, caps, plugin
    let payload: &[u8] = b"\x0a5.7.0-fake\x00\x01\x00\x00\x00abcdefgh\x00\xff\xf7\x21\x02\x00\xff\x81\x15\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00ijklmnopqrst\x00mysql_native_password\x00";
    Box::leak(mysql_packet(0, payload).into_boxed_slice())
}

#[test]
fn credentials_required_stop_every_probe_there() {
    let cases: Vec<(&str, u16, &str)> = vec![
        (
            "redis",
            scripted(b"", |_| b"-NOAUTH Authentication required.\r\n".to_vec()),
            "resp",
        ),
        (
            "postgres",
            scripted(b"", |req| {
                if req == [0, 0, 0, 8, 4, 210, 22, 47] {
                    b"N".to_vec()
                } else {
                    // AuthenticationSASL, SCRAM-SHA-256
                    let mut m = b"R\x00\x00\x00\x17\x00\x00\x00\x0a".to_vec();
                    m.extend_from_slice(b"SCRAM-SHA-256\x00\x00");
                    m
                }
            }),
            "postgresql",
        ),
        (
            "mysql",
            scripted(mysql_greeting(), |_| {
                mysql_packet(2, b"\xff\x15\x04#28000Access denied")
            }),
            "mysql",
        ),
        (
            "rabbitmq",
            scripted(b"", |req| {
                let method = |class: u16, method: u16, args: &[u8]| {
                    let mut payload = class.to_be_bytes().to_vec();
                    payload.extend_from_slice(&method.to_be_bytes());
                    payload.extend_from_slice(args);
                    let mut f = vec![1, 0, 0];
                    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                    f.extend_from_slice(&payload);
                    f.push(0xce);
                    f
                };
                if req.starts_with(b"AMQP") {
                    // Connection.Start: version, empty properties, mechanisms, locales
                    method(
                        10,
                        10,
                        b"\x00\x09\x00\x00\x00\x00\x00\x00\x05PLAIN\x00\x00\x00\x05en_US",
                    )
                } else {
                    // Connection.Close 403 ACCESS_REFUSED
                    method(10, 50, b"\x01\x93\x06refuse\x00\x0a\x00\x0b")
                }
            }),
            "amqp",
        ),
        ("mosquitto", scripted(b"", |_| vec![0x20, 2, 0, 5]), "mqtt"),
        (
            "nats",
            scripted(b"INFO {\"auth_required\":true}\r\n", |_| {
                b"-ERR 'Authorization Violation'\r\n".to_vec()
            }),
            "nats",
        ),
    ];
    for (hint, port, protocol) in cases {
        let stats = probe(port, &[hint]);
        let p = only(&stats, protocol);
        assert_eq!(p.reach, ProbeReach::AuthRequired, "{hint}: {p:?}");
        assert!(p.outcome.starts_with("refused: "), "{hint}: {p:?}");
    }
}

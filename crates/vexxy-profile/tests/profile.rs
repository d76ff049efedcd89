//! The v1 execution profile format: snapshot, schema, round trips and errors.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};
use vexxy_model::{
    EvidenceSpan, ExecutedBinary, ExecutionProfile, ExerciseStats, ExerciseWindow, FailedOpen,
    FileAccess, FunctionCalls, LoadedLibrary, LostEvents, NetworkUse, ProbeReach, ProbeRecord,
    ProcessRecord, ProfileSource, RunInfo, RunOutcome, ScriptOutcome, SocketAddress, SocketOp,
    TracerInfo, WindowEnd, WindowMode,
};
use vexxy_profile::{
    merge, parse, read, read_limited, to_json, write, ProfileError, SCHEMA, SCHEMA_JSON,
};

/// A profile with something in every field, collections sorted.
fn rich() -> ExecutionProfile {
    ExecutionProfile {
        run: RunInfo {
            image: "oci-archive:/images/nginx.tar".into(),
            image_digest: Some(format!("sha256:{}", "ab".repeat(32))),
            command: vec![
                "/docker-entrypoint.sh".into(),
                "nginx".into(),
                "-g".into(),
                "daemon off;".into(),
            ],
            started_at: "2025-06-01T12:00:00Z".into(),
            duration_ms: 31_250,
            requested_duration_ms: 30_000,
            outcome: RunOutcome::StoppedAtEnd,
            window: Some(ExerciseWindow {
                mode: WindowMode::Adaptive {
                    quiet_ms: 3_000,
                    minimum_ms: 5_000,
                },
                ended: WindowEnd::Quiet,
                last_evidence_ms: Some(1_840),
                exercised_ms: 2_210,
            }),
            source: Default::default(),
            spans: Vec::new(),
        },
        executables: vec![
            ExecutedBinary {
                path: "/bin/sh".into(),
                interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
                count: 2,
            },
            ExecutedBinary {
                path: "/usr/local/bin/static-tool".into(),
                interpreter: None,
                count: 1,
            },
            ExecutedBinary {
                path: "/usr/sbin/nginx".into(),
                interpreter: Some("/lib64/ld-linux-x86-64.so.2".into()),
                count: 1,
            },
        ],
        files: vec![
            FileAccess {
                path: "/etc/ld.so.cache".into(),
                opens: 3,
            },
            FileAccess {
                path: "/etc/nginx/nginx.conf".into(),
                opens: 1,
            },
            FileAccess {
                path: "/usr/share/nginx/html/index.html".into(),
                opens: 12,
            },
        ],
        failed_opens: vec![
            FailedOpen {
                name: "/etc/nginx/conf.d/missing.conf".into(),
                count: 1,
            },
            FailedOpen {
                name: "relative/name".into(),
                count: 4,
            },
        ],
        loaded_libraries: vec![
            LoadedLibrary {
                path: "/lib64/ld-linux-x86-64.so.2".into(),
                mappings: 3,
            },
            LoadedLibrary {
                path: "/usr/lib/x86_64-linux-gnu/libc.so.6".into(),
                mappings: 3,
            },
            LoadedLibrary {
                path: "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
                mappings: 1,
            },
        ],
        network: vec![
            NetworkUse {
                op: SocketOp::Connect,
                address: SocketAddress::Inet(IpAddr::V6(Ipv6Addr::LOCALHOST), 53),
                ok: 0,
                failed: 1,
            },
            NetworkUse {
                op: SocketOp::Connect,
                address: SocketAddress::Unix("/run/nscd/socket".into()),
                ok: 0,
                failed: 2,
            },
            NetworkUse {
                op: SocketOp::Bind,
                address: SocketAddress::Inet(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80),
                ok: 1,
                failed: 0,
            },
            NetworkUse {
                op: SocketOp::Bind,
                address: SocketAddress::Other(16),
                ok: 1,
                failed: 0,
            },
            NetworkUse {
                op: SocketOp::Accept,
                address: SocketAddress::Inet(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000),
                ok: 7,
                failed: 0,
            },
        ],
        syscalls: BTreeMap::from([
            ("accept4".to_owned(), 7),
            ("execve".to_owned(), 4),
            ("openat".to_owned(), 120),
        ]),
        processes: vec![
            ProcessRecord {
                pid: 1,
                ppid: 0,
                execs: vec!["/docker-entrypoint.sh".into(), "/usr/sbin/nginx".into()],
                comm: "nginx".into(),
                exit_code: None,
            },
            ProcessRecord {
                pid: 7,
                ppid: 1,
                execs: vec!["/bin/sh".into()],
                comm: "sh".into(),
                exit_code: Some(0),
            },
        ],
        functions: vec![
            FunctionCalls {
                library: "/usr/lib/x86_64-linux-gnu/libssl.so.3".into(),
                symbol: "SSL_read".into(),
                calls: 0,
            },
            FunctionCalls {
                library: "/usr/lib/x86_64-linux-gnu/libz.so.1".into(),
                symbol: "inflate".into(),
                calls: 12,
            },
        ],
        exercise: ExerciseStats {
            ports: vec![80, 443],
            ready_ports: vec![80],
            ready_after_ms: Some(850),
            http_requests: 18,
            http_status: BTreeMap::from([(0, 1), (200, 9), (404, 8)]),
            http_paths: vec!["/".into(), "/a".into(), "/robots.txt".into()],
            script: Some(ScriptOutcome {
                path: "tests/smoke.sh".into(),
                exit_code: Some(0),
                duration_ms: 420,
            }),
            // the snapshot predates probes: see probes_round_trip_and_are_optional
            ..ExerciseStats::default()
        },
        lost: LostEvents {
            ring_buffer: 2,
            map_full: BTreeMap::from([("files".to_owned(), 5)]),
            truncated_paths: 1,
            running_before_attach: 0,
        },
        tracer: TracerInfo {
            kernel: "6.1.0-37-amd64".into(),
            startup_ms: 140,
            uprobes_attached: 1,
            uprobe_errors: vec![
                "/usr/lib/x86_64-linux-gnu/libz.so.1:inflate: no such symbol".into(),
            ],
            complete_libraries: vec!["/usr/lib/x86_64-linux-gnu/libcrypto.so.3".into()],
        },
    }
}

fn as_value(profile: &ExecutionProfile) -> Value {
    serde_json::from_slice(&to_json(profile)).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect()
}

#[test]
fn snapshot_of_a_rich_profile() {
    let text = String::from_utf8(to_json(&rich())).unwrap();
    insta::assert_snapshot!("rich_profile", text);
}

#[test]
fn output_is_valid_against_the_schema() {
    let validator = validator();
    let mut killed = rich();
    killed.exercise.script = Some(ScriptOutcome {
        path: "t.sh".into(),
        exit_code: None,
        duration_ms: 5,
    });
    killed.run.outcome = RunOutcome::Signaled(9);
    let mut exited = rich();
    exited.run.outcome = RunOutcome::Exited(-1);
    exited.exercise.script = None;
    exited.run.image_digest = None;
    let mut timed_out = ExecutionProfile::default();
    timed_out.run.outcome = RunOutcome::TimedOut;
    let mut fixed = rich();
    fixed.run.window = Some(ExerciseWindow {
        mode: WindowMode::Fixed,
        ended: WindowEnd::Maximum,
        last_evidence_ms: None,
        exercised_ms: 0,
    });
    for (name, profile) in [
        ("rich", rich()),
        ("default", ExecutionProfile::default()),
        ("killed", killed),
        ("exited", exited),
        ("timed out", timed_out),
        ("fixed window", fixed),
    ] {
        let errors = schema_errors(&validator, &as_value(&profile));
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn the_schema_rejects_malformed_documents() {
    let validator = validator();
    type Edit = fn(&mut Value);
    let cases: &[(&str, Edit)] = &[
        ("missing run", |d| {
            d.as_object_mut().unwrap().remove("run");
        }),
        ("other schema", |d| {
            d["schema"] = json!("https://vexxy.dev/schemas/execution-profile/v2")
        }),
        ("unknown top-level field", |d| d["extra"] = json!(1)),
        ("negative count", |d| {
            d["execution_profile"]["files_accessed"][0]["opens"] = json!(-1)
        }),
        ("port out of range", |d| {
            d["exercise"]["ports"][0] = json!(70_000)
        }),
        ("unknown outcome", |d| {
            d["run"]["outcome"] = json!({"kind": "vanished"})
        }),
        ("exited without code", |d| {
            d["run"]["outcome"] = json!({"kind": "exited"})
        }),
        ("bad address family", |d| {
            d["execution_profile"]["network_connections"][0]["address"] =
                json!({"family": "inet", "path": "/x"})
        }),
        ("bad ip", |d| {
            d["execution_profile"]["network_connections"][0]["address"] =
                json!({"family": "inet", "ip": "localhost", "port": 1})
        }),
        ("status key not a number", |d| {
            d["exercise"]["http_status"] = json!({"ok": 1})
        }),
        ("digest not sha256", |d| {
            d["run"]["image_digest"] = json!("md5:abc")
        }),
        ("fixed window with a quiet period", |d| {
            d["run"]["window"]["mode"] = json!("fixed");
            d["run"]["window"]["ended"] = json!("maximum");
        }),
        ("fixed window ended quiet", |d| {
            d["run"]["window"] = json!({"mode": "fixed", "quiet_ms": null, "minimum_ms": null,
                "ended": "quiet", "last_evidence_ms": null, "exercised_ms": 0});
        }),
        ("adaptive window without a minimum", |d| {
            d["run"]["window"]["minimum_ms"] = json!(null)
        }),
        ("unknown window end", |d| {
            d["run"]["window"]["ended"] = json!("bored")
        }),
        ("missing optional written as absent", |d| {
            d["execution_profile"]["executed_binaries"][0]
                .as_object_mut()
                .unwrap()
                .remove("interpreter");
        }),
    ];
    for (name, edit) in cases {
        let mut doc = as_value(&rich());
        edit(&mut doc);
        assert!(!validator.is_valid(&doc), "{name}: schema accepted it");
    }
}

#[test]
fn round_trips_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.json");
    let mut fixed = rich();
    fixed.run.window = Some(ExerciseWindow {
        mode: WindowMode::Fixed,
        ended: WindowEnd::TimedOut,
        last_evidence_ms: Some(29_100),
        exercised_ms: 31_000,
    });
    let mut no_window = rich();
    no_window.run.window = None;
    for profile in [rich(), ExecutionProfile::default(), fixed, no_window] {
        write(&path, &profile).unwrap();
        assert_eq!(read(&path).unwrap(), profile);
        assert_eq!(std::fs::read(&path).unwrap(), to_json(&profile));
    }
    // Nothing but the target is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["profile.json"]);
}

#[test]
fn output_is_sorted_and_byte_stable() {
    let sorted = rich();
    let mut shuffled = rich();
    shuffled.files.reverse();
    shuffled.network.reverse();
    shuffled.processes.reverse();
    shuffled.functions.reverse();
    shuffled.loaded_libraries.reverse();
    shuffled.executables.reverse();
    shuffled.failed_opens.reverse();
    shuffled.exercise.ports = vec![443, 80, 443];
    shuffled.exercise.http_paths.reverse();
    assert_eq!(to_json(&shuffled), to_json(&sorted));
    assert_eq!(parse(&to_json(&shuffled), "x").unwrap(), sorted);
}

#[test]
fn reading_sorts_and_ignores_unknown_fields() {
    let mut doc = as_value(&rich());
    let files = doc["execution_profile"]["files_accessed"]
        .as_array_mut()
        .unwrap();
    files.reverse();
    files[0]["added_in_a_later_minor_version"] = json!(true);
    doc["future_section"] = json!({});
    doc["exercise"].as_object_mut().unwrap().remove("script");
    let profile = parse(&serde_json::to_vec(&doc).unwrap(), "doc.json").unwrap();
    let mut expected = rich();
    expected.exercise.script = None;
    assert_eq!(profile, expected);
}

/// Profiles written before windows were recorded have no `run.window`:
/// they still read, without a window.
#[test]
fn a_profile_without_a_window_still_reads() {
    let mut doc = as_value(&rich());
    doc["run"].as_object_mut().unwrap().remove("window");
    let profile = parse(&serde_json::to_vec(&doc).unwrap(), "old.json").unwrap();
    assert_eq!(profile.run.window, None);
    let mut expected = rich();
    expected.run.window = None;
    assert_eq!(profile, expected);
    // and the schema accepts it, as it accepts an explicit null
    assert!(schema_errors(&validator(), &doc).is_empty());
    doc["run"]["window"] = json!(null);
    assert!(schema_errors(&validator(), &doc).is_empty());
    assert_eq!(
        parse(&serde_json::to_vec(&doc).unwrap(), "old.json")
            .unwrap()
            .run
            .window,
        None
    );
}

/// What an error must look like.
struct Expect {
    variant: &'static str,
    json_path: Option<&'static str>,
    message_has: &'static str,
}

fn variant(e: &ProfileError) -> &'static str {
    match e {
        ProfileError::Read { .. } => "read",
        ProfileError::Write { .. } => "write",
        ProfileError::TooLarge { .. } => "too large",
        ProfileError::Empty { .. } => "empty",
        ProfileError::Malformed { .. } => "malformed",
        ProfileError::Truncated { .. } => "truncated",
        ProfileError::UnsupportedSchema { .. } => "unsupported schema",
        ProfileError::NotAnObject { .. } => "not an object",
        ProfileError::Schema { .. } => "schema",
        ProfileError::Invalid { .. } => "invalid",
        _ => "other",
    }
}

#[test]
fn bad_documents_name_the_file_and_json_path() {
    let good = as_value(&rich());
    let edited = |edit: fn(&mut Value)| {
        let mut doc = good.clone();
        edit(&mut doc);
        serde_json::to_vec_pretty(&doc).unwrap()
    };
    let full = to_json(&rich());
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "empty",
            b"  \n".to_vec(),
            Expect {
                variant: "empty",
                json_path: None,
                message_has: "is empty",
            },
        ),
        (
            "not json",
            b"{schema: 1}".to_vec(),
            Expect {
                variant: "malformed",
                json_path: None,
                message_has: "malformed json at line 1",
            },
        ),
        (
            "truncated",
            full[..full.len() / 2].to_vec(),
            Expect {
                variant: "truncated",
                json_path: None,
                message_has: "truncated file?",
            },
        ),
        (
            "trailing garbage",
            [full.as_slice(), b"]"].concat(),
            Expect {
                variant: "malformed",
                json_path: None,
                message_has: "trailing characters",
            },
        ),
        (
            "top-level string",
            b"\"profile\"".to_vec(),
            Expect {
                variant: "not an object",
                json_path: None,
                message_has: "not an object",
            },
        ),
        (
            "garbage",
            b"profile".to_vec(),
            Expect {
                variant: "malformed",
                json_path: None,
                message_has: "expected value",
            },
        ),
        (
            "top-level array",
            b"[1, 2]".to_vec(),
            Expect {
                variant: "not an object",
                json_path: None,
                message_has: "top-level json value is not an object",
            },
        ),
        (
            "missing schema",
            edited(|d| {
                d.as_object_mut().unwrap().remove("schema");
            }),
            Expect {
                variant: "invalid",
                json_path: Some("schema"),
                message_has: "missing field `schema`",
            },
        ),
        (
            "other version",
            edited(|d| d["schema"] = json!("https://vexxy.dev/schemas/execution-profile/v2")),
            Expect {
                variant: "unsupported schema",
                json_path: Some("schema"),
                message_has: "execution-profile/v2",
            },
        ),
        (
            "schema not a string",
            edited(|d| d["schema"] = json!(1)),
            Expect {
                variant: "unsupported schema",
                json_path: Some("schema"),
                message_has: "schema \"1\"",
            },
        ),
        (
            "missing run",
            edited(|d| {
                d.as_object_mut().unwrap().remove("run");
            }),
            Expect {
                variant: "schema",
                json_path: Some("."),
                message_has: "missing field `run`",
            },
        ),
        (
            "count is a string",
            edited(|d| d["execution_profile"]["files_accessed"][1]["opens"] = json!("3")),
            Expect {
                variant: "schema",
                json_path: Some("execution_profile.files_accessed[1].opens"),
                message_has: "invalid type: string \"3\", expected u64",
            },
        ),
        (
            "negative count",
            edited(|d| d["execution_profile"]["syscalls"]["openat"] = json!(-2)),
            Expect {
                variant: "schema",
                json_path: Some("execution_profile.syscalls.openat"),
                message_has: "invalid value: integer `-2`",
            },
        ),
        (
            "section is an object",
            edited(|d| d["execution_profile"]["processes"] = json!({})),
            Expect {
                variant: "schema",
                json_path: Some("execution_profile.processes"),
                message_has: "expected a sequence",
            },
        ),
        (
            "pid too large",
            edited(|d| d["execution_profile"]["processes"][0]["pid"] = json!(5_000_000_000u64)),
            Expect {
                variant: "schema",
                json_path: Some("execution_profile.processes[0].pid"),
                message_has: "expected u32",
            },
        ),
        (
            "unknown outcome",
            edited(|d| d["run"]["outcome"] = json!({"kind": "vanished"})),
            Expect {
                variant: "schema",
                json_path: Some("run.outcome.kind"),
                message_has: "unknown variant `vanished`",
            },
        ),
        (
            "status key not a number",
            edited(|d| d["exercise"]["http_status"] = json!({"ok": 1})),
            Expect {
                variant: "invalid",
                json_path: Some("exercise.http_status.ok"),
                message_has: "invalid status code \"ok\"",
            },
        ),
        (
            "unknown address family",
            edited(|d| {
                d["execution_profile"]["network_connections"][2]["address"] =
                    json!({"family": "bluetooth"})
            }),
            Expect {
                variant: "schema",
                json_path: Some("execution_profile.network_connections[2].address.family"),
                message_has: "unknown variant `bluetooth`",
            },
        ),
        (
            "status code out of range",
            edited(|d| d["exercise"]["http_status"] = json!({"200": 1, "70000": 1})),
            Expect {
                variant: "invalid",
                json_path: Some("exercise.http_status.70000"),
                message_has: "invalid status code \"70000\"",
            },
        ),
        (
            "bad ip",
            edited(|d| {
                d["execution_profile"]["network_connections"][2]["address"]["ip"] =
                    json!("localhost")
            }),
            Expect {
                variant: "invalid",
                json_path: Some("execution_profile.network_connections[2].address.ip"),
                message_has: "invalid ip address \"localhost\"",
            },
        ),
        (
            "bad digest",
            edited(|d| d["run"]["image_digest"] = json!("sha256:abc")),
            Expect {
                variant: "invalid",
                json_path: Some("run.image_digest"),
                message_has: "invalid digest",
            },
        ),
        (
            "fixed window with a quiet period",
            edited(|d| d["run"]["window"]["mode"] = json!("fixed")),
            Expect {
                variant: "invalid",
                json_path: Some("run.window.quiet_ms"),
                message_has: "a fixed window has no quiet period",
            },
        ),
        (
            "fixed window with a minimum",
            edited(|d| {
                d["run"]["window"]["mode"] = json!("fixed");
                d["run"]["window"]["quiet_ms"] = json!(null);
            }),
            Expect {
                variant: "invalid",
                json_path: Some("run.window.minimum_ms"),
                message_has: "a fixed window has no minimum",
            },
        ),
        (
            "fixed window ended quiet",
            edited(|d| {
                d["run"]["window"]["mode"] = json!("fixed");
                d["run"]["window"]["quiet_ms"] = json!(null);
                d["run"]["window"]["minimum_ms"] = json!(null);
            }),
            Expect {
                variant: "invalid",
                json_path: Some("run.window.ended"),
                message_has: "a fixed window does not end quiet",
            },
        ),
        (
            "adaptive window without its quiet period",
            edited(|d| d["run"]["window"]["quiet_ms"] = json!(null)),
            Expect {
                variant: "invalid",
                json_path: Some("run.window.quiet_ms"),
                message_has: "an adaptive window needs its quiet period",
            },
        ),
        (
            "adaptive window without its minimum",
            edited(|d| {
                d["run"]["window"]
                    .as_object_mut()
                    .unwrap()
                    .remove("minimum_ms");
            }),
            Expect {
                variant: "invalid",
                json_path: Some("run.window.minimum_ms"),
                message_has: "an adaptive window needs its minimum",
            },
        ),
        (
            "unknown window end",
            edited(|d| d["run"]["window"]["ended"] = json!("bored")),
            Expect {
                variant: "schema",
                json_path: Some("run.window.ended"),
                message_has: "unknown variant `bored`",
            },
        ),
        (
            "negative last evidence",
            edited(|d| d["run"]["window"]["last_evidence_ms"] = json!(-1)),
            Expect {
                variant: "schema",
                json_path: Some("run.window.last_evidence_ms"),
                message_has: "invalid value: integer `-1`",
            },
        ),
        (
            "duplicate file",
            edited(|d| {
                d["execution_profile"]["files_accessed"][2]["path"] = json!("/etc/ld.so.cache")
            }),
            Expect {
                variant: "invalid",
                json_path: Some("execution_profile.files_accessed[2].path"),
                message_has: "duplicate path \"/etc/ld.so.cache\" (first at index 0)",
            },
        ),
        (
            "duplicate pid",
            edited(|d| d["execution_profile"]["processes"][1]["pid"] = json!(1)),
            Expect {
                variant: "invalid",
                json_path: Some("execution_profile.processes[1].pid"),
                message_has: "duplicate pid 1",
            },
        ),
        (
            "duplicate function",
            edited(|d| {
                d["execution_profile"]["functions_executed"][1] =
                    d["execution_profile"]["functions_executed"][0].clone()
            }),
            Expect {
                variant: "invalid",
                json_path: Some("execution_profile.functions_executed[1]"),
                message_has: "duplicate library and symbol",
            },
        ),
    ];
    for (name, bytes, expect) in cases {
        let err = parse(&bytes, "profiles/run.json").expect_err(name);
        let text = err.to_string();
        assert_eq!(variant(&err), expect.variant, "{name}: {text}");
        assert_eq!(err.json_path(), expect.json_path, "{name}: {text}");
        assert!(text.starts_with("profiles/run.json"), "{name}: {text}");
        assert!(text.contains(expect.message_has), "{name}: {text}");
        assert!(err.is_bad_input(), "{name}");
    }
}

#[test]
fn read_refuses_large_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    write(&path, &rich()).unwrap();
    let err = read_limited(&path, 100).unwrap_err();
    assert!(
        matches!(err, ProfileError::TooLarge { limit: 100, .. }),
        "{err}"
    );
    assert!(err.is_bad_input());
    assert!(err.to_string().contains("big.json"), "{err}");

    let missing = dir.path().join("missing.json");
    let err = read(&missing).unwrap_err();
    assert!(matches!(err, ProfileError::Read { .. }), "{err}");
    assert!(!err.is_bad_input());
    assert_eq!(err.path(), missing);
}

#[test]
fn write_into_a_missing_directory_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/profile.json");
    let err = write(&path, &rich()).unwrap_err();
    assert!(matches!(err, ProfileError::Write { .. }), "{err}");
    assert!(!err.is_bad_input());
    assert!(
        err.to_string().contains("no/such/dir/profile.json"),
        "{err}"
    );
}

#[test]
fn schema_constant_matches_the_schema_file() {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).unwrap();
    assert_eq!(schema["$id"], json!(SCHEMA));
    assert_eq!(schema["properties"]["schema"]["const"], json!(SCHEMA));
    assert_eq!(as_value(&rich())["schema"], json!(SCHEMA));
}

#[test]
fn the_documented_example_is_valid() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/execution-profile.md"
    ))
    .unwrap();
    let start = doc.find("```json\n").unwrap() + "```json\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let example = &doc[start..end];
    let value: Value = serde_json::from_str(example).unwrap();
    let errors = schema_errors(&validator(), &value);
    assert!(errors.is_empty(), "{errors:#?}");
    let profile = parse(example.as_bytes(), "docs/execution-profile.md").unwrap();
    assert_eq!(profile.exercise.http_status.get(&200), Some(&9));
}

/// `vexxy run -o /dev/null` once replaced /dev/null with a regular file by
/// renaming over it; a special file must be written through instead.
#[test]
fn writing_to_a_fifo_goes_through_it() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|s| s.success()) {
        vexxy_testkit::skip_or_fail("mkfifo (coreutils) cannot make a FIFO here");
        return;
    }
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(&fifo).expect("read fifo"))
    };
    vexxy_profile::write(&fifo, &rich()).expect("write");
    let got = reader.join().expect("reader");
    assert_eq!(vexxy_profile::parse(&got, "fifo").expect("parses"), rich());
    assert!(std::fs::symlink_metadata(&fifo)
        .expect("stat")
        .file_type()
        .is_fifo());
}

/// An observed profile of the same image as [`rich`]: some evidence in
/// common, some new, its own span.
fn observed() -> ExecutionProfile {
    let mut p = rich();
    p.run.source = ProfileSource::Observed;
    p.run.started_at = "2025-06-02T08:00:00Z".into();
    p.run.duration_ms = 3_600_000;
    p.run.requested_duration_ms = 3_600_000;
    p.run.window = None;
    p.run.spans = vec![EvidenceSpan {
        source: ProfileSource::Observed,
        target: "k8s.io/web-1".into(),
        started_at: "2025-06-02T08:00:00Z".into(),
        duration_ms: 3_600_000,
    }];
    p.files.push(FileAccess {
        path: "/usr/share/zoneinfo/UTC".into(),
        opens: 7,
    });
    p.functions[0].calls = 5;
    p.tracer.complete_libraries.clear();
    p
}

#[test]
fn merging_unites_evidence_and_keeps_every_source() {
    let sandbox = rich();
    let merged = merge(sandbox.clone(), observed()).unwrap();
    assert_eq!(merged.run.source, ProfileSource::Observed, "observed wins");
    let targets: Vec<(ProfileSource, &str)> = merged
        .run
        .spans
        .iter()
        .map(|s| (s.source, s.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            (
                ProfileSource::Sandbox,
                "sandbox:oci-archive:/images/nginx.tar"
            ),
            (ProfileSource::Observed, "k8s.io/web-1")
        ],
        "the sandbox run counts as a span of its own"
    );
    // the run's own fields stay the sandbox run's, whichever comes first
    for m in [&merged, &merge(observed(), sandbox.clone()).unwrap()] {
        assert_eq!(m.run.started_at, "2025-06-01T12:00:00Z");
        assert_eq!(m.run.duration_ms, 31_250);
        assert_eq!(m.run.window, sandbox.run.window);
        assert_eq!(m.run.source, ProfileSource::Observed);
    }
    // and a merge that includes a sandbox run keeps them too
    let again = merge(observed(), merged.clone()).unwrap();
    assert_eq!(again.run.duration_ms, 31_250);
    assert_eq!(again.run.spans.len(), 2, "the same observed span once");
    let opens =
        |p: &ExecutionProfile, path: &str| p.files.iter().find(|f| f.path == path).map(|f| f.opens);
    assert_eq!(
        opens(&merged, "/etc/nginx/nginx.conf"),
        Some(2),
        "counts add up"
    );
    assert_eq!(
        opens(&merged, "/usr/share/zoneinfo/UTC"),
        Some(7),
        "new files join"
    );
    assert_eq!(
        merged
            .files
            .windows(2)
            .filter(|w| w[0].path >= w[1].path)
            .count(),
        0,
        "sorted, no duplicates"
    );
    assert_eq!(
        merged.functions[0].calls,
        sandbox.functions[0].calls + 5,
        "calls add up"
    );
    assert!(
        merged.tracer.complete_libraries.is_empty(),
        "a library is completely probed only where every source probed it"
    );
    // processes of the second source are renumbered above the first's
    let max = sandbox.processes.iter().map(|p| p.pid).max().unwrap();
    assert_eq!(merged.processes.len(), 2 * sandbox.processes.len());
    assert!(merged
        .processes
        .iter()
        .skip(sandbox.processes.len())
        .all(|p| p.pid > max));
    // and the result is a valid document that reads back the same
    let doc = as_value(&merged);
    assert!(schema_errors(&validator(), &doc).is_empty());
    assert_eq!(parse(&to_json(&merged), "merged").unwrap(), merged);
}

#[test]
fn merging_profiles_of_different_images_fails_naming_both() {
    let mut other = observed();
    other.run.image_digest = Some(format!("sha256:{}", "cd".repeat(32)));
    let err = merge(rich(), other).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("run.image_digest: "), "{text}");
    assert!(
        text.contains(&"ab".repeat(32)) && text.contains(&"cd".repeat(32)),
        "{text}"
    );
    // a profile without a digest takes the other's
    let mut unknown = observed();
    unknown.run.image_digest = None;
    assert_eq!(
        merge(unknown, rich()).unwrap().run.image_digest,
        rich().run.image_digest
    );
}

#[test]
fn sources_and_spans_round_trip_and_old_profiles_read_as_sandbox_runs() {
    let p = observed();
    let json = to_json(&p);
    let doc: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(doc["run"]["source"], "observed");
    assert_eq!(doc["run"]["spans"][0]["target"], "k8s.io/web-1");
    assert_eq!(parse(&json, "observed").unwrap(), p);
    let mut old = as_value(&rich());
    old["run"].as_object_mut().unwrap().remove("source");
    let read = parse(old.to_string().as_bytes(), "old").unwrap();
    assert_eq!(read.run.source, ProfileSource::Sandbox);
    let mut bad = doc.clone();
    bad["run"]["spans"][0]["target"] = json!("");
    let err = parse(bad.to_string().as_bytes(), "bad.json").unwrap_err();
    assert!(err.to_string().contains("run.spans[0].target"), "{err}");
}

/// `rich()` with protocol probes, a fuzz count and an OpenAPI source.
fn probed() -> ExecutionProfile {
    let mut p = rich();
    p.exercise.http_fuzz_requests = 7;
    p.exercise.openapi = Some("80 /openapi.json".into());
    p.exercise.probes = vec![
        ProbeRecord {
            port: 6379,
            protocol: "resp".into(),
            reach: ProbeReach::Commands,
            outcome: "PING answered; commands answered: INFO".into(),
            requests: 2,
            answered: 2,
            duration_ms: 3,
        },
        // not sorted: the order they ran is kept
        ProbeRecord {
            port: 443,
            protocol: "tls".into(),
            reach: ProbeReach::AuthRequired,
            outcome: "refused".into(),
            requests: 1,
            answered: 0,
            duration_ms: 2_000,
        },
    ];
    p
}

#[test]
fn probes_round_trip_and_are_optional() {
    let p = probed();
    let json = to_json(&p);
    let doc: Value = serde_json::from_slice(&json).unwrap();
    assert!(
        schema_errors(&validator(), &doc).is_empty(),
        "{:?}",
        schema_errors(&validator(), &doc)
    );
    assert_eq!(doc["exercise"]["probes"][0]["reach"], "commands");
    assert_eq!(doc["exercise"]["probes"][1]["reach"], "auth_required");
    assert_eq!(doc["exercise"]["probes"][1]["port"], 443);
    assert_eq!(doc["exercise"]["http_fuzz_requests"], 7);
    assert_eq!(doc["exercise"]["openapi"], "80 /openapi.json");
    assert_eq!(parse(&json, "probed").unwrap(), p);
    // a file round trip is byte-stable
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.json");
    write(&path, &p).unwrap();
    assert_eq!(read(&path).unwrap(), p);
    assert_eq!(std::fs::read(&path).unwrap(), json);
    // profiles without them (older ones) omit the fields and read back empty
    let plain: Value = as_value(&rich());
    for field in ["probes", "http_fuzz_requests", "openapi"] {
        assert!(plain["exercise"].get(field).is_none(), "{field}");
    }
    assert_eq!(
        parse(plain.to_string().as_bytes(), "old").unwrap().exercise,
        rich().exercise
    );
    // an unknown reach is refused
    let mut bad = doc.clone();
    bad["exercise"]["probes"][0]["reach"] = json!("pwned");
    assert!(!validator().is_valid(&bad));
    assert!(parse(bad.to_string().as_bytes(), "bad.json").is_err());
}

#[test]
fn merging_keeps_every_sources_probes() {
    let a = probed();
    let mut b = probed();
    b.exercise.probes.truncate(1);
    b.exercise.openapi = None;
    let merged = merge(a.clone(), b).unwrap();
    assert_eq!(merged.exercise.probes.len(), 3);
    assert_eq!(merged.exercise.http_fuzz_requests, 14);
    assert_eq!(merged.exercise.openapi, a.exercise.openapi);
}

//! From flags to the analysis library's typed requests: the files the user
//! names are read here (bounded, regular files only, never blocking on a
//! FIFO), parsed, and handed over as values. Every failure is bad input
//! naming the flag and the file.

use std::{
    io::Read as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use time::OffsetDateTime;
use vexxy_analyze::{
    AnalyzeError, DecideSettings, Findings, ImageRequest, RunConfig, RunSettings, TestScript,
};
use vexxy_model::{Confidence, VexDocument};
use vexxy_run::WindowPolicy;

use crate::cli::{DecideArgs, EgressMode, ImageArgs, RegistryArgs, SandboxArgs};

/// Largest input file read (reports, SBOMs, VEX, configs).
const MAX_INPUT_BYTES: u64 = vexxy_ingest::Limits::DEFAULT_MAX_BYTES;
/// Largest test script.
const MAX_SCRIPT_BYTES: u64 = 1 << 20;

/// Reads a file the user named with `flag`: a regular file of at most
/// `limit` bytes. A directory, a FIFO, a device or an unreadable file is
/// bad input, said at once.
pub(crate) fn read_file(flag: &str, path: &Path, limit: u64) -> Result<Vec<u8>, AnalyzeError> {
    let bad = |why: String| AnalyzeError::bad_input(format!("{flag} {}: {why}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        // a FIFO would block the open until a writer comes
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| bad(e.to_string()))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad(if meta.is_dir() {
            "is a directory, not a file".into()
        } else {
            "is not a regular file".into()
        }));
    }
    if meta.len() > limit {
        return Err(bad(format!(
            "{} bytes is more than the limit of {limit}",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(bad(format!("more than the limit of {limit} bytes")));
    }
    Ok(bytes)
}

/// A scanner report (`--scan`).
pub(crate) fn report(path: &Path) -> Result<vexxy_ingest::Report, AnalyzeError> {
    let bytes = read_file("--scan", path, MAX_INPUT_BYTES)?;
    match vexxy_ingest::parse(&bytes, path)? {
        vexxy_ingest::Input::Report(r) => Ok(r),
        vexxy_ingest::Input::Sbom(s) => Err(AnalyzeError::bad_input(format!(
            "--scan {}: is an SBOM ({}), not a scanner report; pass it with --sbom",
            path.display(),
            s.format
        ))),
    }
}

/// An SBOM (`--sbom`).
pub(crate) fn sbom(path: &Path) -> Result<vexxy_ingest::Sbom, AnalyzeError> {
    let bytes = read_file("--sbom", path, MAX_INPUT_BYTES)?;
    match vexxy_ingest::parse(&bytes, path)? {
        vexxy_ingest::Input::Sbom(s) => Ok(s),
        vexxy_ingest::Input::Report(r) => Err(AnalyzeError::bad_input(format!(
            "--sbom {}: is a scanner report ({}), not an SBOM; pass it with --scan",
            path.display(),
            r.format
        ))),
    }
}

/// Any VEX document (OpenVEX, CycloneDX VEX, CSAF).
pub(crate) fn vex(flag: &str, path: &Path) -> Result<VexDocument, AnalyzeError> {
    let bytes = read_file(flag, path, MAX_INPUT_BYTES)?;
    Ok(vexxy_vex::read_vex(&bytes, path)?)
}

/// An OCI image config (`--image-config`).
pub(crate) fn image_config(path: &Path) -> Result<RunConfig, AnalyzeError> {
    let bytes = read_file("--image-config", path, MAX_INPUT_BYTES)?;
    RunConfig::parse(&bytes, &path.display().to_string())
}

/// `--scan` or `--sbom` (they conflict) or neither.
pub(crate) fn findings(scan: Option<&Path>, sbom: Option<&Path>) -> Result<Findings, AnalyzeError> {
    Ok(match (scan, sbom) {
        (Some(p), _) => Findings::Report(report(p)?),
        (None, Some(p)) => Findings::Sbom(self::sbom(p)?),
        (None, None) => Findings::None,
    })
}

/// A confidence flag.
pub(crate) fn confidence(flag: &str, value: f64) -> Result<Confidence, AnalyzeError> {
    Confidence::new(value)
        .map_err(|_| AnalyzeError::bad_input(format!("{flag} {value} is outside 0..1")))
}

/// How to decide and write, from `analyze`'s and `reevaluate`'s flags.
pub(crate) fn decide(args: &DecideArgs) -> Result<DecideSettings, AnalyzeError> {
    let timestamp = timestamp(args.timestamp.as_deref())?;
    let mut settings = DecideSettings::at(timestamp);
    settings.policy = vexxy_analyze::Policy {
        review_below: confidence("--review-below", args.review_below)?,
        min_confidence: confidence("--min-confidence", args.min_confidence)?,
    };
    settings.author.clone_from(&args.author);
    settings.rules = rules(&args.rules)?;
    settings.builtin_rules = !args.no_builtin_rules;
    settings.existing = existing(&args.existing)?;
    settings.advisory_symbols = advisory_symbols(args.advisories.as_deref())?;
    Ok(settings)
}

/// The functions the OSV records in `--advisories DIR` name. (Those an
/// OSV-Scanner report embeds travel with the parsed report.)
pub(crate) fn advisory_symbols(
    advisories: Option<&Path>,
) -> Result<Vec<vexxy_ingest::OsvSymbols>, AnalyzeError> {
    let mut out = Vec::new();
    if let Some(dir) = advisories {
        if !dir.is_dir() {
            return Err(AnalyzeError::bad_input(format!(
                "--advisories {}: not a directory",
                dir.display()
            )));
        }
        out.extend(vexxy_ingest::advisory_symbols(dir)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `--rules` files, parsed.
pub(crate) fn rules(paths: &[PathBuf]) -> Result<Vec<vexxy_static::RuleSet>, AnalyzeError> {
    paths
        .iter()
        .map(|path| {
            let bytes = read_file("--rules", path, MAX_INPUT_BYTES)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                AnalyzeError::bad_input(format!("--rules {}: is not UTF-8 text", path.display()))
            })?;
            Ok(vexxy_static::parse_rules(&text, path)?)
        })
        .collect()
}

/// The statements of `--vex` files.
pub(crate) fn existing(paths: &[PathBuf]) -> Result<Vec<vexxy_model::VexStatement>, AnalyzeError> {
    let mut statements = Vec::new();
    for path in paths {
        statements.extend(vex("--vex", path)?.statements);
    }
    Ok(statements)
}

/// The image and how to fetch it.
pub(crate) fn image(reference: &str, args: &ImageArgs) -> Result<ImageRequest, AnalyzeError> {
    let mut request = ImageRequest::parse(reference)?;
    request.name.clone_from(&args.name);
    request.platform = args
        .platform
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| AnalyzeError::bad_input(format!("--platform: {e}")))?;
    request
        .insecure_registries
        .clone_from(&args.registry.insecure_registry);
    request.egress = match args.egress_policy {
        EgressMode::None
            if args.registry_allow.is_empty() && args.egress_allow_address.is_empty() =>
        {
            None
        }
        EgressMode::None => {
            return Err(AnalyzeError::bad_input(
                "--registry-allow and --egress-allow-address need --egress-policy strict",
            ))
        }
        EgressMode::Strict => Some(
            egress_policy(&args.registry_allow, &args.egress_allow_address)
                .map_err(|e| AnalyzeError::bad_input(format!("--egress-policy: {e}")))?,
        ),
    };
    request.credentials = credentials(&args.registry)?;
    Ok(request)
}

/// Registry credentials: `--creds USER:PASSWORD`, else the docker config's.
pub(crate) fn credentials(args: &RegistryArgs) -> Result<vexxy_analyze::Credentials, AnalyzeError> {
    Ok(match &args.creds {
        Some(c) => {
            let (user, pass) = c
                .split_once(':')
                .ok_or_else(|| AnalyzeError::bad_input("--creds: expected USER:PASSWORD"))?;
            vexxy_analyze::Credentials::Basic {
                user: user.to_owned(),
                pass: pass.to_owned(),
            }
        }
        None => vexxy_analyze::Credentials::FromDockerConfig,
    })
}

/// The egress policy of registry pulls (the service's, and the CLI's with
/// `--egress-policy strict`): the deny-list, the hosts that may be
/// contacted (none listed: any public host) and the addresses exempt from
/// the deny-list.
pub(crate) fn egress_policy(
    hosts: &[String],
    addresses: &[String],
) -> Result<vexxy_egress::EgressPolicy, vexxy_egress::EgressError> {
    vexxy_egress::EgressPolicy::new()
        .allow_hosts(hosts)?
        .allow_addresses(addresses)
}

/// How to run, from the sandbox flags.
pub(crate) fn run(args: &SandboxArgs) -> Result<RunSettings, AnalyzeError> {
    let entrypoint = args
        .entrypoint
        .as_deref()
        .map(|line| {
            shlex::split(line).filter(|w| !w.is_empty()).ok_or_else(|| {
                AnalyzeError::bad_input(format!(
                    "--entrypoint {line:?}: empty or unbalanced quotes"
                ))
            })
        })
        .transpose()?;
    let cmd = (!args.cmd.is_empty())
        .then(|| cmd_words(&args.cmd))
        .transpose()?;
    let env = args
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| AnalyzeError::bad_input(format!("--env {kv:?} is not KEY=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let test_script = args
        .test_script
        .as_deref()
        .map(|path| {
            Ok::<_, AnalyzeError>(TestScript {
                name: path.display().to_string(),
                content: read_file("--test-script", path, MAX_SCRIPT_BYTES)?,
            })
        })
        .transpose()?;
    let uprobes = uprobes(&args.uprobe)?;
    if !(args.cpus > 0.0 && args.cpus.is_finite()) {
        return Err(AnalyzeError::bad_input(format!(
            "--cpus {} is not a positive number",
            args.cpus
        )));
    }
    Ok(RunSettings {
        duration: args.duration,
        window: window(args)?,
        timeout: args.timeout,
        entrypoint,
        cmd,
        env,
        ports: args.port.clone(),
        http_probe: !args.no_http_probe,
        test_script,
        limits: vexxy_analyze::SandboxLimits {
            cpus: args.cpus,
            memory_bytes: parse_size("--memory", &args.memory)?,
            pids: args.pids,
            ..vexxy_analyze::SandboxLimits::default()
        },
        runtime: args.runtime.clone(),
        image_config: args.image_config.as_deref().map(image_config).transpose()?,
        uprobes,
    })
}

/// The exercise window from `--fixed-window`, `--quiet-period` and
/// `--min-duration` (clap refuses the last two beside the first).
pub(crate) fn window(args: &SandboxArgs) -> Result<WindowPolicy, AnalyzeError> {
    if args.fixed_window {
        return Ok(WindowPolicy::Fixed);
    }
    let policy = WindowPolicy::Adaptive {
        quiet: args.quiet_period.unwrap_or(vexxy_run::DEFAULT_QUIET),
        minimum: args.min_duration.unwrap_or(vexxy_run::DEFAULT_MINIMUM),
    };
    policy.check().map_err(|e| {
        AnalyzeError::bad_input(format!(
            "--quiet-period {}: {e}",
            humantime::format_duration(args.quiet_period.unwrap_or_default())
        ))
    })?;
    if let Some(minimum) = args.min_duration.filter(|m| *m > args.duration) {
        return Err(AnalyzeError::bad_input(format!(
            "--min-duration {} is longer than --duration {}",
            humantime::format_duration(minimum),
            humantime::format_duration(args.duration)
        )));
    }
    Ok(policy)
}

/// `--cmd` words: each flag is a word; a single flag is a shell-quoted line.
pub(crate) fn cmd_words(flags: &[String]) -> Result<Vec<String>, AnalyzeError> {
    if let [one] = flags {
        shlex::split(one)
            .ok_or_else(|| AnalyzeError::bad_input(format!("--cmd {one:?}: unbalanced quotes")))
    } else {
        Ok(flags.to_vec())
    }
}

/// `512m`, `1g`, `1048576`.
pub(crate) fn parse_size(flag: &str, s: &str) -> Result<u64, AnalyzeError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'm')) => (&t[..i], 1 << 20),
        Some((i, 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| {
            AnalyzeError::bad_input(format!(
                "{flag}: size {s:?} is not a number of bytes with an optional k/m/g suffix"
            ))
        })
}

/// The document timestamp: the flag, else `SOURCE_DATE_EPOCH`, else now.
pub(crate) fn timestamp(flag: Option<&str>) -> Result<OffsetDateTime, AnalyzeError> {
    use time::format_description::well_known::Rfc3339;
    if let Some(s) = flag {
        return OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
            AnalyzeError::bad_input(format!(
                "--timestamp {s:?} is not an RFC 3339 date-time: {e}"
            ))
        });
    }
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let secs: i64 = epoch.trim().parse().map_err(|_| {
            AnalyzeError::bad_input(format!(
                "SOURCE_DATE_EPOCH {epoch:?} is not a number of seconds"
            ))
        })?;
        return OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| AnalyzeError::bad_input(format!("SOURCE_DATE_EPOCH {epoch:?}: {e}")));
    }
    // whole seconds keep documents tidy and stable within a second
    let now = OffsetDateTime::now_utc();
    Ok(now.replace_nanosecond(0).unwrap_or(now))
}

/// A key or envelope file (PEM or JSON), as text.
pub(crate) fn text(flag: &str, path: &Path) -> Result<String, AnalyzeError> {
    String::from_utf8(read_file(flag, path, MAX_INPUT_BYTES)?).map_err(|_| {
        AnalyzeError::bad_input(format!("{flag} {}: is not UTF-8 text", path.display()))
    })
}

/// The caches the CLI uses: the default location, `VEXXY_SCRATCH_DIR` for
/// one-shot unpacking, and the size bounds.
pub(crate) fn caches() -> Result<vexxy_analyze::Caches, AnalyzeError> {
    let mut caches = vexxy_analyze::Caches::default_location()?;
    caches.scratch = std::env::var_os("VEXXY_SCRATCH_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    cache_bounds(&mut caches)?;
    Ok(caches)
}

/// `VEXXY_ROOTFS_CACHE_MAX` and `VEXXY_PROFILE_CACHE_MAX` (bytes, with an
/// optional k/m/g suffix) bound the unpacked images and the stored
/// profiles; the least recently used unused entries go first.
pub(crate) fn cache_bounds(caches: &mut vexxy_analyze::Caches) -> Result<(), AnalyzeError> {
    for (var, slot) in [
        ("VEXXY_ROOTFS_CACHE_MAX", &mut caches.rootfs_max_bytes),
        ("VEXXY_PROFILE_CACHE_MAX", &mut caches.profiles_max_bytes),
    ] {
        if let Ok(value) = std::env::var(var) {
            if !value.trim().is_empty() {
                *slot = parse_size(var, &value)?;
            }
        }
    }
    Ok(())
}

/// `--uprobe /LIBRARY/PATH:SYMBOL` flags as `(library, symbol)` pairs.
pub(crate) fn uprobes(specs: &[String]) -> Result<Vec<(String, String)>, AnalyzeError> {
    specs
        .iter()
        .map(|spec| {
            spec.rsplit_once(':')
                .filter(|(l, s)| l.starts_with('/') && !s.is_empty())
                .map(|(l, s)| (l.to_owned(), s.to_owned()))
                .ok_or_else(|| {
                    AnalyzeError::bad_input(format!(
                        "--uprobe {spec:?} is not /LIBRARY/PATH:SYMBOL"
                    ))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        let cases = [
            ("1g", Some(1u64 << 30)),
            ("512m", Some(512 << 20)),
            ("64K", Some(64 << 10)),
            ("1000", Some(1000)),
            ("2gb", Some(2 << 30)),
            ("x", None),
            ("", None),
        ];
        for (given, want) in cases {
            assert_eq!(parse_size("--memory", given).ok(), want, "{given}");
        }
    }

    /// The window flags of `vexxy run IMAGE ARGS…`.
    fn window_of(args: &[&str]) -> Result<WindowPolicy, AnalyzeError> {
        use clap::Parser as _;
        let cli =
            crate::cli::Cli::try_parse_from(["vexxy", "run", "oci:/x:latest"].iter().chain(args))
                .unwrap();
        match cli.command {
            crate::cli::Command::Run(a) => window(&a.sandbox),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn window_flags_become_a_policy() {
        use std::time::Duration;
        // the flags' help states these defaults
        assert_eq!(
            (vexxy_run::DEFAULT_QUIET, vexxy_run::DEFAULT_MINIMUM),
            (Duration::from_secs(3), Duration::from_secs(5)),
            "update the --quiet-period and --min-duration help"
        );
        assert_eq!(window_of(&[]).unwrap(), WindowPolicy::ADAPTIVE);
        assert_eq!(window_of(&["--fixed-window"]).unwrap(), WindowPolicy::Fixed);
        assert_eq!(
            window_of(&["--quiet-period", "10s", "--min-duration", "8s"]).unwrap(),
            WindowPolicy::Adaptive {
                quiet: Duration::from_secs(10),
                minimum: Duration::from_secs(8)
            }
        );
        for (args, message) in [
            (
                &["--quiet-period", "200ms"][..],
                "--quiet-period 200ms: window quiet period 200 ms is below the 500 ms floor",
            ),
            (
                &["--min-duration", "40s"],
                "--min-duration 40s is longer than --duration 30s",
            ),
        ] {
            let err = window_of(args).unwrap_err();
            assert_eq!(err.kind(), vexxy_analyze::ErrorKind::BadInput, "{args:?}");
            assert!(err.to_string().contains(message), "{args:?}: {err}");
        }
        use clap::Parser as _;
        let refused = crate::cli::Cli::try_parse_from([
            "vexxy",
            "run",
            "oci:/x:latest",
            "--fixed-window",
            "--min-duration",
            "8s",
        ]);
        assert!(refused.is_err(), "--fixed-window takes no minimum");
    }

    #[test]
    fn cmd_words_split_one_flag_shell_style() {
        assert_eq!(
            cmd_words(&["nginx -g 'daemon off;'".into()]).unwrap(),
            vec!["nginx", "-g", "daemon off;"]
        );
        assert_eq!(
            cmd_words(&["a b".into(), "c".into()]).unwrap(),
            vec!["a b", "c"]
        );
        assert!(cmd_words(&["'open".into()]).is_err());
    }

    #[test]
    fn input_files_must_be_regular_readable_and_bounded() {
        let t = tempfile::tempdir().unwrap();
        let fifo = t.path().join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let big = t.path().join("big.json");
        std::fs::write(&big, vec![b' '; 100]).unwrap();
        let long = t.path().join("x".repeat(300));
        for (path, want) in [
            (t.path().to_path_buf(), "is a directory"),
            (fifo, "is not a regular file"),
            (big.clone(), "more than the limit of 10"),
            (t.path().join("absent.json"), "No such file"),
            (long, "name too long"),
        ] {
            let began = std::time::Instant::now();
            let e = read_file("--scan", &path, 10).unwrap_err();
            assert_eq!(e.kind(), vexxy_analyze::ErrorKind::BadInput, "{e}");
            let text = e.to_string();
            assert!(text.starts_with("--scan ") && text.contains(want), "{text}");
            assert!(began.elapsed() < std::time::Duration::from_secs(1));
        }
        assert_eq!(read_file("--scan", &big, 100).unwrap().len(), 100);
    }
}

//! ARCHITECTURE.md says: "Dependencies point down this list; nothing
//! depends on a crate below it." This test holds the workspace to it,
//! reading the code map's order from the document itself and each crate's
//! dependencies from `cargo metadata`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, path::Path, process::Command};

/// The crates in the order of the code map's `### `crates/NAME`` headings
/// (a heading may name two crates).
fn code_map_order(architecture: &str) -> Vec<String> {
    let mut order = Vec::new();
    for line in architecture.lines().filter(|l| l.starts_with("### ")) {
        for part in line.split('`').filter(|p| p.starts_with("crates/")) {
            order.push(part.trim_start_matches("crates/").to_owned());
        }
    }
    order
}

#[test]
fn crates_depend_only_on_crates_above_them_in_the_code_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let order = code_map_order(&architecture);
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, name)| (name.as_str(), i))
        .collect();
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut problems = Vec::new();
    let packages = meta["packages"].as_array().unwrap();
    for package in packages {
        let name = package["name"].as_str().unwrap();
        let Some(&mine) = rank.get(name) else {
            problems.push(format!("{name} is not in ARCHITECTURE.md's code map"));
            continue;
        };
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            if !dep_name.starts_with("vexxy") {
                continue;
            }
            let dev = dep["kind"].as_str() == Some("dev");
            if dep_name.starts_with("vexxy-testkit") && !dev && !name.starts_with("vexxy-testkit") {
                problems.push(format!(
                    "{name} depends on the test kit {dep_name} outside its tests"
                ));
            }
            if dev {
                // tests may use what is above them (the test kits, the binary's helpers)
                continue;
            }
            match rank.get(dep_name) {
                Some(&theirs) if theirs < mine => {}
                Some(_) => problems.push(format!(
                    "{name} depends on {dep_name}, which the code map lists below it"
                )),
                None => problems.push(format!("{dep_name} is not in the code map")),
            }
        }
    }
    assert_eq!(
        packages.len(),
        order.len(),
        "the code map and the workspace list different crates: {order:?}"
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_code_map_order_is_read_from_its_headings() {
    let text =
        "## Code map\n### `crates/a`\ntext `crates/x` in prose\n### `crates/b` and `crates/c`\n";
    assert_eq!(code_map_order(text), ["a", "b", "c"]);
}

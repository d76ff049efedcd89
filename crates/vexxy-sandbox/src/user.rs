//! Resolving the image config `User` against the rootfs, like Docker/runc.

use vexxy_rootfs::{RootFs, RootFsError};

use crate::SandboxError;

/// Largest /etc/passwd or /etc/group we read.
const DB_LIMIT: u64 = 4 << 20;

/// The numeric identity the container process runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) additional_gids: Vec<u32>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn read_db(root: &RootFs, path: &str, user: &str) -> Result<Option<String>, SandboxError> {
    match root.read_to_string(path, DB_LIMIT) {
        Ok(s) => Ok(Some(s)),
        Err(RootFsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(SandboxError::User {
            rootfs: root.host_root().to_owned(),
            user: user.to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: (*f.first()?).to_owned(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

fn groups(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: (*f.first()?).to_owned(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves `user` (`uid`, `uid:gid`, `name`, `name:group`...) with the
/// rootfs's `/etc/passwd` and `/etc/group`, read with chroot semantics.
/// Numeric ids need no entry; a numeric uid without a passwd entry runs
/// with gid 0. Without an explicit group, the user's supplementary groups
/// come from `/etc/group` (runc's `GetExecUser`).
pub(crate) fn resolve_user(
    root: &RootFs,
    user: Option<&str>,
) -> Result<ResolvedUser, SandboxError> {
    let spec = user.unwrap_or("").trim();
    let spec = if spec.is_empty() { "0" } else { spec };
    let err = |reason: String| SandboxError::User {
        rootfs: root.host_root().to_owned(),
        user: spec.to_owned(),
        reason,
    };
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user_part.is_empty() {
        return Err(err("empty user name".into()));
    }
    let passwd_db = read_db(root, "/etc/passwd", spec)?
        .map(|t| passwd(&t))
        .unwrap_or_default();
    let (uid, mut gid, name) = match user_part.parse::<u32>() {
        Ok(uid) => match passwd_db.iter().find(|e| e.uid == uid) {
            Some(e) => (uid, e.gid, Some(e.name.clone())),
            None => (uid, 0, None),
        },
        Err(_) => match passwd_db.iter().find(|e| e.name == user_part) {
            Some(e) => (e.uid, e.gid, Some(e.name.clone())),
            None => return Err(err(format!("no user {user_part:?} in /etc/passwd"))),
        },
    };
    let needs_groups = match group_part {
        Some(g) => g.parse::<u32>().is_err(),
        None => name.is_some(),
    };
    let group_db = if needs_groups {
        read_db(root, "/etc/group", spec)?
            .map(|t| groups(&t))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut additional_gids = Vec::new();
    match group_part {
        Some("") => return Err(err("empty group name".into())),
        Some(g) => {
            gid = match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => match group_db.iter().find(|e| e.name == g) {
                    Some(e) => e.gid,
                    None => return Err(err(format!("no group {g:?} in /etc/group"))),
                },
            }
        }
        None => {
            if let Some(name) = &name {
                for g in group_db
                    .iter()
                    .filter(|g| g.members.iter().any(|m| m == name))
                {
                    if g.gid != gid && !additional_gids.contains(&g.gid) {
                        additional_gids.push(g.gid);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> (tempfile::TempDir, RootFs) {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbad:line\n",
        )
        .expect("passwd");
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww-data:x:33:\nadm:x:4:www-data,other\nstaff:x:50:\n",
        )
        .expect("group");
        let root = RootFs::open(dir.path()).expect("open");
        (dir, root)
    }

    fn ids(r: ResolvedUser) -> (u32, u32, Vec<u32>) {
        (r.uid, r.gid, r.additional_gids)
    }

    #[test]
    fn forms_resolve() {
        let (_d, root) = rootfs();
        assert_eq!(
            ids(resolve_user(&root, None).expect("root")),
            (0, 0, vec![])
        );
        assert_eq!(
            ids(resolve_user(&root, Some("www-data")).expect("name")),
            (33, 33, vec![4])
        );
        assert_eq!(
            ids(resolve_user(&root, Some("33")).expect("uid")),
            (33, 33, vec![4])
        );
        assert_eq!(
            ids(resolve_user(&root, Some("1000")).expect("unknown uid")),
            (1000, 0, vec![])
        );
        assert_eq!(
            ids(resolve_user(&root, Some("1000:50")).expect("uid:gid")),
            (1000, 50, vec![])
        );
        assert_eq!(
            ids(resolve_user(&root, Some("www-data:staff")).expect("name:group")),
            (33, 50, vec![])
        );
        assert_eq!(
            ids(resolve_user(&root, Some("33:adm")).expect("uid:group")),
            (33, 4, vec![])
        );
    }

    #[test]
    fn unknown_names_are_errors() {
        let (_d, root) = rootfs();
        for bad in ["nobody", "www-data:nogroup", ":0", "0:"] {
            let e = resolve_user(&root, Some(bad)).expect_err(bad);
            assert!(e.is_bad_input(), "{e}");
            assert!(e.to_string().contains("user"), "{e}");
        }
    }

    #[test]
    fn missing_databases_allow_numeric_ids() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = RootFs::open(dir.path()).expect("open");
        assert_eq!(
            ids(resolve_user(&root, Some("5:6")).expect("numeric")),
            (5, 6, vec![])
        );
        assert!(resolve_user(&root, Some("app")).is_err());
    }
}

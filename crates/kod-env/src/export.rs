//! Exports: small launchers for an environment's programs and rewritten
//! desktop files for its applications, in `NAME/exports/`.
//!
//! A launcher is
//!
//! ```sh
//! #!/bin/sh
//! KOD_ENVS_DIR='/var/lib/kod/envs' exec '/usr/bin/kod' run 'sid' -- '/usr/bin/jq' "$@"
//! ```
//!
//! - the program's absolute path inside the environment, found at export
//!   time, so the launcher never finds itself through a PATH that includes
//!   the view;
//! - `KOD_ENVS_DIR` pins the store the environment is in, so a personal
//!   environment of the same name cannot shadow a system one;
//! - the absolute path of the kod binary that exported it (resolved at
//!   export time: a launcher works from any PATH, in a desktop session
//!   too); after moving kod, export again (or `kod env sync`) to rewrite
//!   them.

use std::path::{Path, PathBuf};

use crate::desktop::{self, Launch, exec_word};
use crate::error::EnvError;
use crate::store::{Env, ExportedBin};
use crate::view;
use kod_root::{Root, relative};

/// Where programs are looked for in an environment, in PATH order.
const BIN_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where desktop files are looked for.
const APP_DIRS: [&str; 2] = ["/usr/local/share/applications", "/usr/share/applications"];

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_program(root: &Root, path: &Path) -> bool {
    let Some(rel) = relative(path) else {
        return false;
    };
    root.stat(&rel).ok().flatten().is_some_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile
            && st.st_mode & 0o111 != 0
    })
}

/// The absolute path inside the environment of `program` (a name looked up
/// in the standard PATH, or an absolute path).
pub fn find_program(env: &Env, program: &str) -> Result<PathBuf, EnvError> {
    let root = Root::open(&env.root()).map_err(EnvError::io("open", env.root()))?;
    let not_found = |looked: String| EnvError::NoProgram {
        env: env.name.clone(),
        program: program.to_string(),
        looked,
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if p.is_absolute() && is_program(&root, &p) {
            Ok(p)
        } else {
            Err(not_found(program.to_string()))
        };
    }
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| is_program(&root, p))
        .ok_or_else(|| not_found(BIN_DIRS.join(", ")))
}

/// The launcher text for `program` (inside `env`).
pub fn launcher(env: &Env, program: &Path, kod: &Path) -> String {
    format!(
        "#!/bin/sh\n# Runs {prog} of the kod environment {name} (written by `kod env export`).\n\
         KOD_ENVS_DIR={store} exec {kod} run {qname} -- {qprog} \"$@\"\n",
        prog = program.display(),
        name = env.name,
        store = shell_quote(&env.store.dir.to_string_lossy()),
        kod = shell_quote(&kod.to_string_lossy()),
        qname = shell_quote(&env.name),
        qprog = shell_quote(&program.to_string_lossy()),
    )
}

/// Exports programs: writes a launcher for each (named after the program's
/// file name), records them and refreshes the view. Returns the launchers.
pub fn export_bins(
    env: &mut Env,
    programs: &[String],
    kod: &Path,
) -> Result<Vec<PathBuf>, EnvError> {
    let bin = env.exports_dir().join("bin");
    std::fs::create_dir_all(&bin).map_err(EnvError::io("create", &bin))?;
    let mut written = Vec::new();
    for p in programs {
        let path = find_program(env, p)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.clone());
        let file = bin.join(&name);
        write_executable(&file, launcher(env, &path, kod).as_bytes())?;
        env.record.bins.retain(|b| b.name != name);
        env.record.bins.push(ExportedBin { name, path });
        written.push(file);
    }
    env.record.bins.sort_by(|a, b| a.name.cmp(&b.name));
    env.save()?;
    view::refresh(&env.store)?;
    Ok(written)
}

fn write_executable(file: &Path, text: &[u8]) -> Result<(), EnvError> {
    // 0755 whatever the umask: every user runs a system store's launchers.
    let write = || {
        let mut f = kod_root::AtomicFile::create(file)?;
        std::io::Write::write_all(&mut f, text)?;
        f.set_mode(0o755)?;
        f.commit()
    };
    write().map_err(EnvError::io("write", file))
}

/// The file name of an exported desktop file.
pub fn desktop_file_name(env: &str, id: &str) -> String {
    format!("kod-{env}-{id}.desktop")
}

fn app_id(id: &str) -> &str {
    id.strip_suffix(".desktop").unwrap_or(id)
}

/// Copies the icon a desktop file names (an absolute path in the
/// environment, or a name in its hicolor theme or pixmaps) into the
/// exports; returns its host path.
fn copy_icon(env: &Env, root: &Root, icon: &str, id: &str) -> Result<Option<PathBuf>, EnvError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if icon.starts_with('/') {
        candidates.push(icon.into());
    } else if !icon.contains('/') {
        let theme = Path::new("/usr/share/icons/hicolor");
        candidates.push(theme.join(format!("scalable/apps/{icon}.svg")));
        for size in [512, 256, 192, 128, 96, 64, 48, 32, 24, 16] {
            candidates.push(theme.join(format!("{size}x{size}/apps/{icon}.png")));
        }
        for ext in ["svg", "png", "xpm"] {
            candidates.push(format!("/usr/share/pixmaps/{icon}.{ext}").into());
        }
    }
    for c in candidates {
        let Some(rel) = relative(&c) else { continue };
        let Ok(Some(data)) = root.read(&rel) else {
            continue;
        };
        let ext = c.extension().and_then(|e| e.to_str()).unwrap_or("png");
        let dir = env.exports_dir().join("share/icons");
        std::fs::create_dir_all(&dir).map_err(EnvError::io("create", &dir))?;
        let dest = dir.join(format!("{id}.{ext}"));
        kod_root::write_atomic(&dest, &data).map_err(EnvError::io("write", &dest))?;
        return Ok(Some(dest));
    }
    Ok(None)
}

/// Exports a desktop application: its .desktop file rewritten to run
/// through kod (see [`desktop::rewrite`]) and its icon copied, recorded,
/// and the view refreshed. Returns the written file.
pub fn export_app(env: &mut Env, id: &str, kod: &Path) -> Result<PathBuf, EnvError> {
    let id = app_id(id);
    if id.is_empty() || id.contains('/') {
        return Err(EnvError::NoApp {
            env: env.name.clone(),
            id: id.to_string(),
            looked: "(not a desktop id)".into(),
        });
    }
    let root = Root::open(&env.root()).map_err(EnvError::io("open", env.root()))?;
    let text = APP_DIRS
        .iter()
        .find_map(|d| {
            let rel = relative(&Path::new(d).join(format!("{id}.desktop")))?;
            root.read(&rel).ok().flatten()
        })
        .ok_or_else(|| EnvError::NoApp {
            env: env.name.clone(),
            id: id.to_string(),
            looked: APP_DIRS.join(", "),
        })?;
    let text = String::from_utf8_lossy(&text);
    let icon = match desktop::icon(&text) {
        Some(i) => copy_icon(env, &root, &i, id)?,
        None => None,
    };
    let prefix = format!(
        "env {} {} run {} --",
        exec_word(&format!("KOD_ENVS_DIR={}", env.store.dir.display())),
        exec_word(&kod.to_string_lossy()),
        exec_word(&env.name)
    );
    let out = desktop::rewrite(
        &text,
        &Launch {
            env: &env.name,
            prefix,
            icon: icon.map(|p| p.to_string_lossy().into_owned()),
        },
    );
    let dir = env.exports_dir().join("share/applications");
    std::fs::create_dir_all(&dir).map_err(EnvError::io("create", &dir))?;
    let file = dir.join(desktop_file_name(&env.name, id));
    kod_root::write_atomic(&file, out.as_bytes()).map_err(EnvError::io("write", &file))?;
    if !env.record.apps.iter().any(|a| a == id) {
        env.record.apps.push(id.to_string());
        env.record.apps.sort();
    }
    env.save()?;
    view::refresh(&env.store)?;
    Ok(file)
}

/// Removes exported programs and applications. Names that were not
/// exported are returned (nothing to do for them).
pub fn unexport(env: &mut Env, bins: &[String], apps: &[String]) -> Result<Vec<String>, EnvError> {
    let mut missing = Vec::new();
    for b in bins {
        if !env.record.bins.iter().any(|x| &x.name == b) {
            missing.push(b.clone());
            continue;
        }
        env.record.bins.retain(|x| &x.name != b);
        let f = env.exports_dir().join("bin").join(b);
        remove_file(&f)?;
    }
    for a in apps {
        let id = app_id(a);
        if !env.record.apps.iter().any(|x| x == id) {
            missing.push(a.clone());
            continue;
        }
        env.record.apps.retain(|x| x != id);
        remove_file(
            &env.exports_dir()
                .join("share/applications")
                .join(desktop_file_name(&env.name, id)),
        )?;
        let icons = env.exports_dir().join("share/icons");
        if let Ok(rd) = std::fs::read_dir(&icons) {
            for f in rd.flatten() {
                let p = f.path();
                if p.file_stem().is_some_and(|s| s == id) {
                    remove_file(&p)?;
                }
            }
        }
    }
    env.save()?;
    view::refresh(&env.store)?;
    Ok(missing)
}

fn remove_file(p: &Path) -> Result<(), EnvError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(EnvError::Io {
            op: "remove",
            path: p.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Ownership, Record, Scope, Store, write_record};

    fn env(dir: &Path) -> Env {
        let store = Store::new(dir, Scope::Custom);
        let e = Env {
            name: "sid".into(),
            store,
            record: Record::new("debian:sid", "test".into(), Ownership::Host),
        };
        let root = e.root();
        for d in [
            "usr/bin",
            "usr/share/applications",
            "usr/share/icons/hicolor/48x48/apps",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let jq = root.join("usr/bin/jq");
        std::fs::write(&jq, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&jq, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("usr/bin/data"), "not executable").unwrap();
        std::fs::write(
            root.join("usr/share/applications/org.example.Edit.desktop"),
            "[Desktop Entry]\nName=Edit\nExec=edit %F\nTryExec=edit\nIcon=edit\n",
        )
        .unwrap();
        std::fs::write(
            root.join("usr/share/icons/hicolor/48x48/apps/edit.png"),
            "PNG",
        )
        .unwrap();
        write_record(&e.dir(), &e.record).unwrap();
        e
    }

    #[test]
    fn programs_are_found_on_the_environments_path() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        assert_eq!(find_program(&e, "jq").unwrap(), Path::new("/usr/bin/jq"));
        assert_eq!(find_program(&e, "/bin/jq").unwrap(), Path::new("/bin/jq"));
        assert!(matches!(
            find_program(&e, "data"),
            Err(EnvError::NoProgram { .. })
        ));
        assert!(find_program(&e, "nope").is_err());
        assert!(find_program(&e, "usr/bin/jq").is_err());
    }

    #[test]
    fn launchers_and_desktop_files_are_written_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let mut e = env(d.path());
        let kod = Path::new("/opt/kod's/kod");
        let files = export_bins(&mut e, &["jq".into()], kod).unwrap();
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert_eq!(
            text,
            format!(
                "#!/bin/sh\n# Runs /usr/bin/jq of the kod environment sid (written by `kod env export`).\n\
                 KOD_ENVS_DIR='{}' exec '/opt/kod'\\''s/kod' run 'sid' -- '/usr/bin/jq' \"$@\"\n",
                d.path().display()
            )
        );
        assert_eq!(e.record.bins[0].path, Path::new("/usr/bin/jq"));
        assert!(d.path().join(".view/bin/jq").exists());

        let app = export_app(&mut e, "org.example.Edit.desktop", kod).unwrap();
        assert_eq!(app.file_name().unwrap(), "kod-sid-org.example.Edit.desktop");
        let text = std::fs::read_to_string(&app).unwrap();
        let icon = e.exports_dir().join("share/icons/org.example.Edit.png");
        assert_eq!(std::fs::read_to_string(&icon).unwrap(), "PNG");
        assert!(text.contains("Name=Edit (sid)\n"), "{text}");
        assert!(text.contains(" run sid -- edit %F\n"), "{text}");
        assert!(
            text.contains(&format!("Icon={}\n", icon.display())),
            "{text}"
        );
        assert!(!text.contains("TryExec"));
        assert!(
            d.path()
                .join(".view/share/applications/kod-sid-org.example.Edit.desktop")
                .exists()
        );
        assert!(matches!(
            export_app(&mut e, "missing", kod),
            Err(EnvError::NoApp { .. })
        ));

        let missing = unexport(
            &mut e,
            &["jq".into(), "nope".into()],
            &["org.example.Edit".into()],
        )
        .unwrap();
        assert_eq!(missing, ["nope"]);
        assert!(e.record.bins.is_empty() && e.record.apps.is_empty());
        assert!(!files[0].exists() && !app.exists() && !icon.exists());
        assert!(!d.path().join(".view/bin/jq").exists());
    }
}

//! The ESP as kod writes it: a few file operations behind one trait, on a
//! mounted directory (real machines, tests) or through mtools on a FAT
//! filesystem inside an image file (this build machine has no vfat driver).
//!
//! Paths are absolute within the ESP (`/loader/entries/kod-3.conf`). Every
//! change is synced before the call returns, so the order of the calls is
//! the order on the disk, which the interruption-safe plan depends on.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::BootError;
use crate::error::io;

/// A name in an ESP directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    /// The file or directory name.
    pub name: String,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// What to write: bytes kod made, or a local file (a kernel) copied as is.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// These bytes.
    Bytes(&'a [u8]),
    /// The contents of this local file.
    File(&'a Path),
}

/// An ESP kod can change.
pub trait Esp {
    /// The names in `dir`; empty when `dir` does not exist.
    fn list(&self, dir: &str) -> Result<Vec<DirEntry>, BootError>;
    /// The contents of the file `path`.
    fn read(&self, path: &str) -> Result<Vec<u8>, BootError>;
    /// Writes the file `path` (its directory exists), replacing one there.
    fn write(&self, path: &str, from: Source<'_>) -> Result<(), BootError>;
    /// Renames the file `from` to `to` in the same directory; `to` does
    /// not exist.
    fn rename(&self, from: &str, to: &str) -> Result<(), BootError>;
    /// Removes the file `path`.
    fn remove(&self, path: &str) -> Result<(), BootError>;
    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &str) -> Result<(), BootError>;
    /// Makes the directory `path` (its parent exists).
    fn mkdir(&self, path: &str) -> Result<(), BootError>;
}

/// The parts of an ESP path; `..`, relative paths and empty parts are
/// refused so no path leaves the ESP.
fn parts(path: &str) -> Result<Vec<&str>, BootError> {
    let bad = || BootError::BadPath { path: path.into() };
    let rest = path.strip_prefix('/').ok_or_else(bad)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let parts: Vec<&str> = rest.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad());
    }
    Ok(parts)
}

/// An ESP mounted (or any directory standing for one) at `root`.
#[derive(Debug, Clone)]
pub struct DirEsp {
    root: PathBuf,
}

impl DirEsp {
    /// The ESP at `root` (`/efi` on a running machine).
    pub fn new(root: impl Into<PathBuf>) -> DirEsp {
        DirEsp { root: root.into() }
    }

    fn local(&self, path: &str) -> Result<PathBuf, BootError> {
        let mut p = self.root.clone();
        for part in parts(path)? {
            p.push(part);
        }
        Ok(p)
    }

    /// fsync of the directory holding `p`, so a new or removed name is on
    /// the disk before the next step.
    fn sync_parent(p: &Path) -> Result<(), BootError> {
        let parent = p.parent().unwrap_or(p);
        File::open(parent)
            .and_then(|f| f.sync_all())
            .map_err(io("sync", parent))
    }
}

impl Esp for DirEsp {
    fn list(&self, dir: &str) -> Result<Vec<DirEntry>, BootError> {
        let local = self.local(dir)?;
        let entries = match fs::read_dir(&local) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &local)(e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io("list", &local))?;
            let is_dir = e.file_type().map_err(io("stat", e.path()))?.is_dir();
            out.push(DirEntry {
                name: e.file_name().to_string_lossy().into_owned(),
                is_dir,
            });
        }
        out.sort();
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, BootError> {
        let local = self.local(path)?;
        fs::read(&local).map_err(io("read", local))
    }

    fn write(&self, path: &str, from: Source<'_>) -> Result<(), BootError> {
        let local = self.local(path)?;
        match from {
            Source::Bytes(b) => fs::write(&local, b).map_err(io("write", &local))?,
            Source::File(f) => {
                fs::copy(f, &local).map_err(io("copy to the ESP", f))?;
            }
        }
        File::open(&local)
            .and_then(|f| f.sync_all())
            .map_err(io("sync", &local))?;
        DirEsp::sync_parent(&local)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), BootError> {
        let (a, b) = (self.local(from)?, self.local(to)?);
        fs::rename(&a, &b).map_err(io("rename", &a))?;
        DirEsp::sync_parent(&b)
    }

    fn remove(&self, path: &str) -> Result<(), BootError> {
        let local = self.local(path)?;
        fs::remove_file(&local).map_err(io("remove", &local))?;
        DirEsp::sync_parent(&local)
    }

    fn remove_dir(&self, path: &str) -> Result<(), BootError> {
        let local = self.local(path)?;
        fs::remove_dir(&local).map_err(io("remove the directory", &local))?;
        DirEsp::sync_parent(&local)
    }

    fn mkdir(&self, path: &str) -> Result<(), BootError> {
        let local = self.local(path)?;
        fs::create_dir(&local).map_err(io("make the directory", &local))?;
        DirEsp::sync_parent(&local)
    }
}

/// A FAT filesystem at byte `offset` of the image file `image` (the ESP
/// partition of a disk image), through mtools' `IMAGE@@OFFSET`.
///
/// kod-disk's `Esp` works on a partition's device node and has no listing
/// or removal; this one needs no loop device, so `kod rebuild --image`
/// and `kod generations … --image` can update an image's entries offline.
#[derive(Debug, Clone)]
pub struct MtoolsEsp {
    image: PathBuf,
    offset: u64,
}

impl MtoolsEsp {
    /// The FAT filesystem at byte `offset` of `image` (0 for a bare
    /// filesystem image or a partition's device).
    pub fn new(image: impl Into<PathBuf>, offset: u64) -> MtoolsEsp {
        MtoolsEsp {
            image: image.into(),
            offset,
        }
    }

    fn fat(path: &str) -> Result<String, BootError> {
        Ok(format!("::/{}", parts(path)?.join("/")))
    }

    fn tool(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        // mtools refuses a geometry that is not whole tracks unless told.
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(format!(
            "{}@@{}",
            self.image.display(),
            self.offset
        ));
        c
    }

    fn run(&self, mut cmd: Command) -> Result<Vec<u8>, BootError> {
        let line = format!("{cmd:?}");
        let out = cmd.output().map_err(io("run mtools on", &self.image))?;
        if !out.status.success() {
            return Err(BootError::Mtools {
                command: line,
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }

    /// mtools writes through the page cache; fsync puts each step on the
    /// disk before the next one.
    fn sync(&self) -> Result<(), BootError> {
        File::open(&self.image)
            .and_then(|f| f.sync_all())
            .map_err(io("sync", &self.image))
    }

    fn change(&self, cmd: Command) -> Result<(), BootError> {
        self.run(cmd)?;
        self.sync()
    }
}

impl Esp for MtoolsEsp {
    fn list(&self, dir: &str) -> Result<Vec<DirEntry>, BootError> {
        let fat = MtoolsEsp::fat(dir)?;
        let mut cmd = self.tool("mdir");
        cmd.arg("-b").arg(&fat);
        let line = format!("{cmd:?}");
        let out = cmd.output().map_err(io("run mdir on", &self.image))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            if stderr.contains("not found") {
                return Ok(Vec::new());
            }
            return Err(BootError::Mtools {
                command: line,
                status: out.status.to_string(),
                output: stderr.trim().to_string(),
            });
        }
        // `mdir -b ::/a` prints `::/a/NAME` per file and `::/a/NAME/` per
        // directory.
        let prefix = if fat == "::/" { fat } else { format!("{fat}/") };
        let mut names: Vec<DirEntry> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter(|n| !n.is_empty())
            .map(|n| match n.strip_suffix('/') {
                Some(d) => DirEntry {
                    name: d.into(),
                    is_dir: true,
                },
                None => DirEntry {
                    name: n.into(),
                    is_dir: false,
                },
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, BootError> {
        let mut cmd = self.tool("mcopy");
        cmd.arg("-n").arg(MtoolsEsp::fat(path)?).arg("-");
        self.run(cmd)
    }

    fn write(&self, path: &str, from: Source<'_>) -> Result<(), BootError> {
        let tmp;
        let local = match from {
            Source::File(f) => f,
            Source::Bytes(b) => {
                tmp = tempfile::NamedTempFile::new()
                    .map_err(io("make a temporary file in", std::env::temp_dir()))?;
                fs::write(tmp.path(), b).map_err(io("write", tmp.path()))?;
                tmp.path()
            }
        };
        let mut cmd = self.tool("mcopy");
        // -D o: overwrite a name that exists instead of asking.
        cmd.args(["-D", "o"]).arg(local).arg(MtoolsEsp::fat(path)?);
        self.change(cmd)
    }

    fn rename(&self, from: &str, to: &str) -> Result<(), BootError> {
        let mut cmd = self.tool("mren");
        cmd.arg(MtoolsEsp::fat(from)?).arg(MtoolsEsp::fat(to)?);
        self.change(cmd)
    }

    fn remove(&self, path: &str) -> Result<(), BootError> {
        let mut cmd = self.tool("mdel");
        cmd.arg(MtoolsEsp::fat(path)?);
        self.change(cmd)
    }

    fn remove_dir(&self, path: &str) -> Result<(), BootError> {
        let mut cmd = self.tool("mrd");
        cmd.arg(MtoolsEsp::fat(path)?);
        self.change(cmd)
    }

    fn mkdir(&self, path: &str) -> Result<(), BootError> {
        let mut cmd = self.tool("mmd");
        cmd.arg(MtoolsEsp::fat(path)?);
        self.change(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_esp() {
        assert_eq!(parts("/loader/entries").unwrap(), ["loader", "entries"]);
        assert!(parts("/").unwrap().is_empty());
        for bad in ["loader", "/a/../b", "/a//b", "/a/./b", ""] {
            assert!(
                matches!(parts(bad), Err(BootError::BadPath { .. })),
                "{bad}"
            );
        }
        assert_eq!(MtoolsEsp::fat("/EFI/BOOT").unwrap(), "::/EFI/BOOT");
        assert_eq!(MtoolsEsp::fat("/").unwrap(), "::/");
    }

    #[test]
    fn a_directory_esp_does_what_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let esp = DirEsp::new(dir.path());
        assert!(esp.list("/loader").unwrap().is_empty());
        esp.mkdir("/loader").unwrap();
        esp.write("/loader/a.part", Source::Bytes(b"one")).unwrap();
        esp.rename("/loader/a.part", "/loader/a").unwrap();
        assert_eq!(fs::read(dir.path().join("loader/a")).unwrap(), b"one");
        assert_eq!(esp.read("/loader/a").unwrap(), b"one");
        esp.mkdir("/loader/entries").unwrap();
        assert_eq!(
            esp.list("/loader").unwrap(),
            [
                DirEntry {
                    name: "a".into(),
                    is_dir: false
                },
                DirEntry {
                    name: "entries".into(),
                    is_dir: true
                }
            ]
        );
        esp.remove("/loader/a").unwrap();
        esp.remove_dir("/loader/entries").unwrap();
        assert!(
            fs::read_dir(dir.path().join("loader"))
                .unwrap()
                .next()
                .is_none()
        );
        let err = esp.read("/loader/../../etc/passwd").unwrap_err();
        assert!(matches!(err, BootError::BadPath { .. }));
    }
}

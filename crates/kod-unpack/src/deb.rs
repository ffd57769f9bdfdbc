//! Reading a Debian binary package: the `ar` container, its control part
//! (kept in memory: it is small) and its data part (streamed entry by
//! entry into a [`Writer`], never held whole).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use kod_root::{Compression, Decoder, UnknownCompression};

use crate::error::Reason;
use crate::kept::{Plan, Tee};
use crate::writer::{Entry, EntryKind, Writer, normalize};

/// One file of the control part (`control`, `md5sums`, `conffiles`,
/// `preinst`, `postinst`, `prerm`, `postrm`, `config`, `templates`,
/// `triggers`, `shlibs`, `symbols`, ...), as dpkg would copy it to
/// `/var/lib/dpkg/info/PACKAGE.NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlMember {
    /// The member's name inside control.tar (`postinst`, `md5sums`, ...).
    pub name: String,
    /// Its permission bits (maintainer scripts are executable).
    pub mode: u32,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The `control` file of a package: its text and its parsed fields.
#[derive(Debug, Clone)]
pub struct Control {
    /// The paragraph as the package ships it (for the dpkg status file).
    pub text: String,
    /// The parsed fields.
    pub fields: deb822_fast::Paragraph,
}

impl Control {
    /// Parses a `control` file.
    pub fn parse(text: String) -> Result<Control, String> {
        let fields: deb822_fast::Paragraph = text
            .parse()
            .map_err(|e| format!("the control file is not a valid deb822 paragraph: {e:?}"))?;
        if fields.get("Package").is_none_or(str::is_empty) {
            return Err("the control file has no Package field".into());
        }
        Ok(Control { text, fields })
    }

    /// The `Package` field.
    pub fn package(&self) -> &str {
        self.fields.get("Package").unwrap_or_default()
    }

    /// A field by name (case-insensitive), if present.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field)
    }
}

/// Everything of a `.deb` except its data: what the next stage writes to
/// `/var/lib/dpkg/info` and the status file.
#[derive(Debug, Clone)]
pub struct DebMeta {
    /// The parsed `control` file.
    pub control: Control,
    /// Every member of the control part, in archive order (`control`
    /// included).
    pub members: Vec<ControlMember>,
    /// The conffiles (absolute paths), from the `conffiles` member.
    pub conffiles: Vec<PathBuf>,
    /// (md5 hex digest, absolute path) from the `md5sums` member.
    pub md5sums: Vec<(String, PathBuf)>,
}

impl DebMeta {
    /// A control member by name.
    pub fn member(&self, name: &str) -> Option<&ControlMember> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// An error with the `ar` member it happened in and the tar entry, if any.
#[derive(Debug)]
pub(crate) struct Located {
    pub(crate) member: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) reason: Reason,
}

pub(crate) fn located(
    member: Option<String>,
    path: Option<String>,
    reason: Reason,
) -> Box<Located> {
    Box::new(Located {
        member,
        path,
        reason,
    })
}

fn at(member: &str) -> impl Fn(Reason) -> Box<Located> + '_ {
    move |r| located(Some(member.to_string()), None, r)
}

/// The compression of member `member` named `stem` plus an extension
/// (`data.tar.xz`); `None` when it is not `stem`.
fn compression(member: &str, stem: &str) -> Option<Result<Compression, UnknownCompression>> {
    let ext = match member.strip_prefix(stem)? {
        "" => "",
        rest => rest.strip_prefix('.')?,
    };
    Some(Compression::from_extension(ext))
}

/// Reads a member decompressed.
fn decoder<R: Read>(c: Compression, r: R) -> io::Result<Decoder<BufReader<R>>> {
    kod_root::decoder(c, BufReader::with_capacity(64 * 1024, r))
}

/// What a member of an unknown compression is.
fn unknown(name: &str, e: &UnknownCompression) -> Reason {
    Reason::Format(format!("member {name}: {e}"))
}

fn bytes_to_path(b: &[u8]) -> PathBuf {
    let mut v = Vec::with_capacity(b.len() + 1);
    if b.first() != Some(&b'/') {
        v.push(b'/');
    }
    v.extend_from_slice(b);
    PathBuf::from(OsString::from_vec(v))
}

fn tar_error(what: &'static str) -> impl Fn(io::Error) -> Reason {
    move |e| Reason::Io {
        op: what,
        source: e,
    }
}

fn read_control_tar(c: Compression, r: impl Read) -> Result<DebMeta, Reason> {
    let mut archive = tar::Archive::new(decoder(c, r).map_err(tar_error("open control.tar"))?);
    let mut members = Vec::new();
    for entry in archive.entries().map_err(tar_error("read control.tar"))? {
        let mut entry = entry.map_err(tar_error("read control.tar"))?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let name = normalize(&entry.path_bytes())?;
        let name = String::from_utf8(name)
            .map_err(|_| Reason::Format("a control member name is not UTF-8".into()))?;
        let mode = entry
            .header()
            .mode()
            .map_err(tar_error("read control.tar"))?;
        let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry
            .read_to_end(&mut data)
            .map_err(tar_error("read control.tar"))?;
        members.push(ControlMember { name, mode, data });
    }
    let text = members
        .iter()
        .find(|m| m.name == "control")
        .ok_or_else(|| Reason::Format("control.tar has no `control` file".into()))?;
    let text = String::from_utf8(text.data.clone())
        .map_err(|_| Reason::Format("the control file is not UTF-8".into()))?;
    let control = Control::parse(text).map_err(Reason::Format)?;
    let lines = |name: &str| -> Vec<&[u8]> {
        members
            .iter()
            .find(|m| m.name == name)
            .map(|m| {
                m.data
                    .split(|&b| b == b'\n')
                    .map(<[u8]>::trim_ascii)
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    // conffiles lines: `/path [flag]` (flags such as remove-on-upgrade).
    let conffiles = lines("conffiles")
        .into_iter()
        .filter_map(|l| l.split(u8::is_ascii_whitespace).next())
        .map(bytes_to_path)
        .collect();
    // md5sums lines: `HEX  relative/path`.
    let md5sums = lines("md5sums")
        .into_iter()
        .filter_map(|l| {
            let sp = l.iter().position(u8::is_ascii_whitespace)?;
            let (hex, rest) = l.split_at(sp);
            Some((
                String::from_utf8_lossy(hex).into_owned(),
                bytes_to_path(rest.trim_ascii()),
            ))
        })
        .collect();
    Ok(DebMeta {
        control,
        members,
        conffiles,
        md5sums,
    })
}

/// What to do with the data part once the control part is read.
pub(crate) enum Data<'w, 'a> {
    /// Stop after the control part.
    Skip,
    /// Stream it into this writer, after `before` accepted the control.
    Write {
        writer: &'w mut Writer<'a>,
        before: &'w dyn Fn(&DebMeta) -> Result<(), Reason>,
        /// Where the data part comes from (and whether to keep it).
        kept: &'w Plan,
    },
}

/// Reads `deb`; returns its control part, having streamed its data into
/// the writer when one is given.
pub(crate) fn read_deb(deb: &Path, mut data: Data<'_, '_>) -> Result<DebMeta, Box<Located>> {
    let file =
        File::open(deb).map_err(|e| located(None, None, Reason::io("open the archive", e)))?;
    let mut ar = ar::Archive::new(BufReader::with_capacity(64 * 1024, file));
    let mut meta: Option<DebMeta> = None;
    let mut binary_seen = false;
    let mut data_seen = false;
    while let Some(member) = ar.next_entry() {
        let member = member.map_err(|e| {
            located(
                None,
                None,
                Reason::Format(format!("not a valid ar archive (not a .deb?): {e}")),
            )
        })?;
        let name = String::from_utf8_lossy(member.header().identifier());
        let name = name.trim_end_matches('/').to_string();
        if name == "debian-binary" {
            let mut v = String::new();
            let mut member = member;
            member
                .read_to_string(&mut v)
                .map_err(|e| at(&name)(Reason::io("read debian-binary", e)))?;
            if !v.starts_with("2.") {
                return Err(at(&name)(Reason::Format(format!(
                    "unsupported .deb format version {:?}",
                    v.trim()
                ))));
            }
            binary_seen = true;
        } else if !binary_seen {
            return Err(at(&name)(Reason::Format(
                "the first member is not debian-binary: not a Debian binary package".into(),
            )));
        } else if let Some(c) = compression(&name, "control.tar") {
            let c = c.map_err(|e| at(&name)(unknown(&name, &e)))?;
            meta = Some(read_control_tar(c, member).map_err(at(&name))?);
            if matches!(data, Data::Skip) {
                break;
            }
        } else if let Some(c) = compression(&name, "data.tar") {
            let c = c.map_err(|e| at(&name)(unknown(&name, &e)))?;
            let Some(m) = &meta else {
                return Err(at(&name)(Reason::Format(
                    "data.tar comes before control.tar".into(),
                )));
            };
            if let Data::Write {
                writer,
                before,
                kept,
            } = &mut data
            {
                before(m).map_err(at(&name))?;
                writer.set_conffiles(&m.conffiles);
                write_data(c, member, writer, kept)
                    .map_err(|(path, r)| located(Some(name.clone()), path, r))?;
            }
            data_seen = true;
            break;
        } else if name.starts_with('_') {
            // Reserved for future use by the format: ignored, as dpkg does.
        } else {
            return Err(at(&name)(Reason::Format(format!(
                "unexpected member {name} in a Debian binary package"
            ))));
        }
    }
    let meta = meta.ok_or_else(|| {
        located(
            None,
            None,
            Reason::Format("the archive has no control.tar member".into()),
        )
    })?;
    if !data_seen && !matches!(data, Data::Skip) {
        return Err(located(
            None,
            None,
            Reason::Format("the archive has no data.tar member".into()),
        ));
    }
    Ok(meta)
}

/// Streams the data part into the writer: decompressed from the member,
/// also kept, or read from where it was kept (see [`crate::kept`]).
fn write_data(
    c: Compression,
    member: impl Read,
    writer: &mut Writer<'_>,
    kept: &Plan,
) -> Result<(), (Option<String>, Reason)> {
    let no_path = |r: Reason| (None, r);
    match kept {
        Plan::Decompress => {
            let decoded = decoder(c, member).map_err(|e| no_path(tar_error("open data.tar")(e)))?;
            write_tar(decoded, writer)
        }
        Plan::Keep(k) => {
            let decoded = decoder(c, member).map_err(|e| no_path(tar_error("open data.tar")(e)))?;
            let mut tee = Tee::new(decoded, k);
            match write_tar(&mut tee, writer) {
                Ok(()) => {
                    tee.keep(k);
                    Ok(())
                }
                Err(e) => {
                    tee.discard();
                    Err(e)
                }
            }
        }
        Plan::Read(k) => {
            let mut tar = k
                .open()
                .map_err(|e| no_path(tar_error("open the kept data.tar")(e)))?;
            write_tar(&mut tar, writer)?;
            k.check(tar).map_err(|m| no_path(Reason::Format(m)))
        }
    }
}

fn write_tar(r: impl Read, writer: &mut Writer<'_>) -> Result<(), (Option<String>, Reason)> {
    let no_path = |r: Reason| (None, r);
    let mut archive = tar::Archive::new(r);
    for entry in archive
        .entries()
        .map_err(|e| no_path(tar_error("read data.tar")(e)))?
    {
        let mut entry = entry.map_err(|e| no_path(tar_error("read data.tar")(e)))?;
        let raw = entry.path_bytes().into_owned();
        let shown = || Some(String::from_utf8_lossy(&raw).into_owned());
        let e = tar_entry(&entry, Fields::Strict).map_err(|r| (shown(), r))?;
        writer.write(&e, &mut entry).map_err(|r| (shown(), r))?;
    }
    Ok(())
}

/// How [`tar_entry`] treats header fields it cannot read (empty or
/// malformed mode, owner, mtime, device numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields {
    /// They are an error (packages).
    Strict,
    /// They read as tar reads them: mode 0644, owner 0, mtime 0, device
    /// 0 (root tarballs made by any tool).
    Lenient,
}

/// Converts one tar entry's header to an [`Entry`]; shared by every
/// tar-based format.
pub(crate) fn tar_entry<R: Read>(
    entry: &tar::Entry<'_, R>,
    fields: Fields,
) -> Result<Entry, Reason> {
    fn field<T>(r: io::Result<T>, fields: Fields, default: T) -> Result<T, Reason> {
        match (r, fields) {
            (Ok(v), _) => Ok(v),
            (Err(_), Fields::Lenient) => Ok(default),
            (Err(e), Fields::Strict) => Err(tar_error("read a tar header")(e)),
        }
    }
    let path = normalize(&entry.path_bytes())?;
    let link = || -> Result<Vec<u8>, Reason> {
        entry
            .link_name_bytes()
            .map(|l| l.into_owned())
            .ok_or_else(|| Reason::Format("a link entry has no target".into()))
    };
    let h = entry.header();
    let device = || -> Result<(u32, u32), Reason> {
        Ok((
            field(h.device_major(), fields, None)?.unwrap_or(0),
            field(h.device_minor(), fields, None)?.unwrap_or(0),
        ))
    };
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File(entry.size()),
        tar::EntryType::Directory => EntryKind::Directory,
        tar::EntryType::Symlink => EntryKind::Symlink(link()?),
        tar::EntryType::Link => EntryKind::HardLink(link()?),
        tar::EntryType::Char => {
            let (a, b) = device()?;
            EntryKind::CharDevice(a, b)
        }
        tar::EntryType::Block => {
            let (a, b) = device()?;
            EntryKind::BlockDevice(a, b)
        }
        tar::EntryType::Fifo => EntryKind::Fifo,
        other => return Err(Reason::EntryType(other)),
    };
    let id = |v: u64| match (u32::try_from(v), fields) {
        (Ok(v), _) => Ok(v),
        (Err(_), Fields::Lenient) => Ok(0),
        (Err(_), Fields::Strict) => Err(Reason::Format(format!("owner id {v} is out of range"))),
    };
    Ok(Entry {
        path,
        kind,
        mode: field(h.mode(), fields, 0o644)?,
        uid: id(field(h.uid(), fields, 0)?)?,
        gid: id(field(h.gid(), fields, 0)?)?,
        mtime: i64::try_from(field(h.mtime(), fields, 0)?).unwrap_or(i64::MAX),
        xattrs: Vec::new(),
    })
}

//! A machine's disk image opened offline (`--image FILE` of `rebuild` and
//! `generations`): its GPT read for the Btrfs root and the ESP, the root
//! attached to a loop device of its own (offset and size limit: this
//! kernel makes no partition nodes) and its top level mounted in kod's
//! private mount namespace; the ESP is written through mtools at its
//! offset. Dropping it unmounts and lets the loop device go.

use std::path::Path;

use kod_disk::layout::gpt_types;

use crate::boot_entries::EspAt;
use crate::machine::{DiskError, Mounted, private_namespace, temporary_mount_point};

/// An opened image: its top level mounted at [`MachineImage::top`].
pub struct MachineImage {
    esp: Option<EspAt>,
    // Dropped in this order: the mount, then the loop device, then the
    // mount point.
    mounted: Option<Mounted>,
    _root: kod_disk::Loop,
    dir: tempfile::TempDir,
}

impl MachineImage {
    /// Opens `image`: a GPT with a root partition of this architecture's
    /// type (what `kod install --image` makes).
    pub fn open(image: &Path) -> Result<MachineImage, DiskError> {
        private_namespace()?;
        let not = |reason: String| DiskError::NotAMachine {
            path: image.to_path_buf(),
            reason,
        };
        let parts = kod_disk::read_gpt(image).map_err(|e| {
            not(format!(
                "{e}: not a disk image kod made (`kod install --image` writes a GPT)"
            ))
        })?;
        let root = parts
            .iter()
            .find(|p| [gpt_types::ROOT_X86_64, gpt_types::ROOT_AARCH64].contains(&p.type_guid))
            .ok_or_else(|| {
                not(
                    "its partition table has no root partition (the type kod gives the Btrfs \
                     root): not a machine kod installed"
                        .into(),
                )
            })?;
        let esp = parts
            .iter()
            .find(|p| p.type_guid == gpt_types::ESP)
            .map(|p| EspAt::Fat {
                file: image.to_path_buf(),
                offset: p.offset,
            });
        let lo = kod_disk::Loop::attach(image, root.offset, root.size).map_err(|source| {
            DiskError::Mount {
                what: "attaching a loop device to",
                path: image.to_path_buf(),
                source,
            }
        })?;
        let dir = temporary_mount_point("kod-image-")?;
        let mounted = Mounted::btrfs(lo.path(), dir.path())?;
        Ok(MachineImage {
            esp,
            mounted: Some(mounted),
            _root: lo,
            dir,
        })
    }

    /// Where the image's top level is mounted.
    pub fn top(&self) -> &Path {
        self.dir.path()
    }

    /// The image's ESP, if it has one.
    pub fn esp(&self) -> Option<&EspAt> {
        self.esp.as_ref()
    }

    /// Unmounts, saying why when that fails (dropping unmounts too, quietly).
    pub fn close(mut self) -> Result<(), DiskError> {
        match self.mounted.take() {
            Some(m) => m.unmount(),
            None => Ok(()),
        }
    }
}

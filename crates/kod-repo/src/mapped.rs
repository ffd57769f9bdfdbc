//! A read-only memory map of a whole file, so a stored index is used where
//! the page cache holds it instead of being copied into the heap.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};

/// The bytes of a file, mapped read-only and private. Cloning shares the
/// mapping.
#[derive(Clone)]
pub(crate) struct Mapped(Arc<Region>);

struct Region {
    ptr: *mut std::ffi::c_void,
    len: usize,
}

// SAFETY: the region is read-only for its whole life; sharing its address
// between threads is as safe as sharing a `&[u8]`.
unsafe impl Send for Region {}
// SAFETY: as above: nothing ever writes through the pointer.
unsafe impl Sync for Region {}

impl Mapped {
    /// Maps `path`. kod only maps files it replaces by `rename`, never
    /// rewrites in place, so the mapped bytes cannot change under it.
    pub(crate) fn open(path: &Path) -> std::io::Result<Mapped> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        if len == 0 {
            return Ok(Mapped(Arc::new(Region {
                ptr: std::ptr::null_mut(),
                len: 0,
            })));
        }
        // SAFETY: a fresh mapping (no address hint) of `len` bytes of an
        // open file, read-only and private; it is unmapped exactly once, in
        // `Region::drop`.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ,
                MapFlags::PRIVATE,
                &file,
                0,
            )?
        };
        Ok(Mapped(Arc::new(Region { ptr, len })))
    }
}

impl Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes for as long as the region
        // lives, which outlives the returned borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.0.ptr.cast::<u8>(), self.0.len) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: `ptr` and `len` are exactly the mapping made in
            // `Mapped::open`, and no borrow of it outlives the region.
            // Nothing useful can be done if unmapping fails.
            let _ = unsafe { munmap(self.ptr, self.len) };
        }
    }
}

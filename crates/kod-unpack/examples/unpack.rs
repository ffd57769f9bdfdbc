//! Unpacks .deb files into a root, by hand: `unpack [--merged-usr ARCH] ROOT DEB...`.
//! Prints the wall time and totals; used for the benchmark in the README.

use std::path::PathBuf;
use std::time::Instant;

use kod_unpack::{Conffiles, UnpackOptions, merged_usr_dirs, setup_merged_usr, unpack_all};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut merged = None;
    if args.first().map(String::as_str) == Some("--merged-usr") && args.len() > 1 {
        merged = Some(args.remove(1));
        args.remove(0);
    }
    let (root, debs) = args
        .split_first()
        .ok_or("usage: unpack [--merged-usr ARCH] ROOT DEB...")?;
    let root = PathBuf::from(root);
    std::fs::create_dir_all(&root)?;
    let start = Instant::now();
    if let Some(arch) = merged {
        setup_merged_usr(&root, &merged_usr_dirs(&arch))?;
    }
    let options = UnpackOptions {
        conffiles: Conffiles::Install,
        ..UnpackOptions::default()
    };
    let unpacked = unpack_all(debs, &root, &options)?;
    let elapsed = start.elapsed();
    let files: u64 = unpacked.iter().map(|u| u.files).sum();
    let bytes: u64 = unpacked.iter().map(|u| u.bytes).sum();
    println!(
        "{} packages, {files} files, {} MB in {:.3} s",
        unpacked.len(),
        bytes / 1_000_000,
        elapsed.as_secs_f64()
    );
    Ok(())
}

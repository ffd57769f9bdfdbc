//! Debian repositories built in tests with the real tools (gpg to make keys
//! and clearsign, xz to compress, dpkg-deb to read packages), to serve with
//! [`crate::http::FileServer`].

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

/// A throwaway GnuPG home with two signing keys: `good@example.org` and
/// `other@example.org` (ed25519, no passphrase).
pub struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    /// Makes the home and both keys.
    pub fn new() -> Gpg {
        let g = Gpg {
            home: tempfile::tempdir().expect("a temporary GNUPGHOME"),
        };
        for uid in [
            "kod test <good@example.org>",
            "kod other <other@example.org>",
        ] {
            g.run(&["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        }
        g
    }

    /// Runs gpg in this home; its stdout.
    pub fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("gpg runs (apt-get install gpg)");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Writes the public key of `who` (`good` or `other`) to `path`.
    pub fn export(&self, who: &str, path: &Path, armor: bool) {
        let uid = format!("{who}@example.org");
        let mut args = vec!["--export"];
        if armor {
            args.insert(0, "--armor");
        }
        args.push(&uid);
        std::fs::write(path, self.run(&args)).expect("write the key");
    }

    /// Clearsigns `input` as `who` into `output`.
    pub fn clearsign(&self, who: &str, input: &Path, output: &Path) {
        let uid = format!("{who}@example.org");
        self.run(&[
            "--local-user",
            &uid,
            "--clearsign",
            "--output",
            output.to_str().expect("UTF-8 path"),
            input.to_str().expect("UTF-8 path"),
        ]);
    }
}

impl Default for Gpg {
    fn default() -> Self {
        Gpg::new()
    }
}

/// How [`DebRepo::publish`] writes the Release.
pub struct ReleaseOptions {
    /// The Valid-Until field.
    pub valid_until: String,
    /// Offer the Packages file by hash (Acquire-By-Hash).
    pub by_hash: bool,
    /// Which key signs: `good` (in [`DebRepo::keyring`]) or `other`.
    pub signer: &'static str,
}

impl Default for ReleaseOptions {
    fn default() -> Self {
        ReleaseOptions {
            valid_until: "Sat, 01 Jan 2101 00:00:00 UTC".into(),
            by_hash: false,
            signer: "good",
        }
    }
}

/// A repository on disk: one suite, `main/binary-amd64`. Serve
/// [`DebRepo::serve_dir`]; the archive's base URL is `SERVER/repo`.
pub struct DebRepo {
    root: tempfile::TempDir,
    gpg: Gpg,
    keyring: PathBuf,
    suite: String,
}

impl DebRepo {
    /// An empty repository for `suite`, with a keyring holding the key
    /// that signs it.
    pub fn new(suite: &str) -> DebRepo {
        let gpg = Gpg::new();
        let root = tempfile::tempdir().expect("a temporary directory");
        let keyring = root.path().join("good.gpg");
        gpg.export("good", &keyring, false);
        DebRepo {
            root,
            gpg,
            keyring,
            suite: suite.to_string(),
        }
    }

    /// The directory to serve.
    pub fn serve_dir(&self) -> &Path {
        self.root.path()
    }

    /// The archive's directory (`dists/` and `pool/` below it).
    pub fn archive(&self) -> PathBuf {
        self.root.path().join("repo")
    }

    /// The keyring (binary) that verifies the `good` signature.
    pub fn keyring(&self) -> &Path {
        &self.keyring
    }

    /// The GnuPG home, for tests that sign differently.
    pub fn gpg(&self) -> &Gpg {
        &self.gpg
    }

    /// `dists/SUITE`.
    pub fn dists(&self) -> PathBuf {
        self.archive().join("dists").join(&self.suite)
    }

    /// Puts `deb` in the pool and returns its Packages paragraph (its
    /// control fields plus Filename, Size and SHA256).
    pub fn add_deb(&self, deb: &Path) -> String {
        let bytes = std::fs::read(deb).expect("read the .deb");
        let name = deb.file_name().expect("a file name").to_string_lossy();
        let rel = format!("pool/main/{name}");
        let dest = self.archive().join(&rel);
        std::fs::create_dir_all(dest.parent().expect("a parent")).expect("mkdir pool");
        std::fs::write(&dest, &bytes).expect("copy into the pool");
        let out = Command::new("dpkg-deb")
            .arg("-f")
            .arg(deb)
            .output()
            .expect("dpkg-deb runs");
        assert!(out.status.success(), "dpkg-deb -f {deb:?}");
        let control = String::from_utf8(out.stdout).expect("UTF-8 control");
        format!(
            "{}\nFilename: {rel}\nSize: {}\nSHA256: {}\n",
            control.trim_end(),
            bytes.len(),
            hex(&sha2::Sha256::digest(&bytes))
        )
    }

    /// Writes Packages.xz from `packages` (paragraphs) and a signed
    /// InRelease vouching for it.
    pub fn publish(&self, packages: &str, opts: &ReleaseOptions) {
        let bin = self.dists().join("main/binary-amd64");
        std::fs::create_dir_all(&bin).expect("mkdir dists");
        std::fs::write(bin.join("Packages"), packages).expect("write Packages");
        let st = Command::new("xz")
            .args(["-kf", bin.join("Packages").to_str().expect("UTF-8 path")])
            .status()
            .expect("xz runs");
        assert!(st.success());
        std::fs::remove_file(bin.join("Packages")).expect("rm Packages");
        let xz = std::fs::read(bin.join("Packages.xz")).expect("read Packages.xz");
        let hash = hex(&sha2::Sha256::digest(&xz));
        if opts.by_hash {
            let dir = bin.join("by-hash/SHA256");
            std::fs::create_dir_all(&dir).expect("mkdir by-hash");
            std::fs::rename(bin.join("Packages.xz"), dir.join(&hash)).expect("move by hash");
        }
        let suite = &self.suite;
        let release = format!(
            "Origin: kod\nLabel: kod\nSuite: {suite}\nCodename: {suite}\n\
             Date: Sat, 01 Jan 2022 00:00:00 UTC\nValid-Until: {}\n{}\
             Architectures: amd64\nComponents: main\nDescription: kod fixture\nSHA256:\n {hash} {} main/binary-amd64/Packages.xz\n",
            opts.valid_until,
            if opts.by_hash {
                "Acquire-By-Hash: yes\n"
            } else {
                ""
            },
            xz.len()
        );
        std::fs::write(self.dists().join("Release"), &release).expect("write Release");
        self.gpg.clearsign(
            opts.signer,
            &self.dists().join("Release"),
            &self.dists().join("InRelease"),
        );
    }
}

/// Lower-case hexadecimal.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

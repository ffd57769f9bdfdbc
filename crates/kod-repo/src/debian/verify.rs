//! OpenPGP verification of clearsigned `InRelease` files against keyrings,
//! with sequoia.

use std::io::Read;
use std::path::PathBuf;

use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::parse::stream::{
    MessageLayer, MessageStructure, VerificationError, VerificationHelper, VerifierBuilder,
};
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::{Cert, KeyHandle};

use super::Error;

/// The keyring Debian's own releases are signed with, as the
/// debian-archive-keyring package installs it.
pub const DEBIAN_ARCHIVE_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// OpenPGP certificates to verify repository signatures with.
#[derive(Debug, Clone)]
pub struct Keyring {
    certs: Vec<Cert>,
    paths: Vec<PathBuf>,
}

/// The digest of the keyring files `paths` (their names and bytes): what a
/// cached verification was made against.
pub fn keyring_digest(paths: &[PathBuf]) -> Result<crate::Sha256, Error> {
    let mut all = Vec::new();
    for path in paths {
        all.extend_from_slice(path.as_os_str().as_encoded_bytes());
        all.push(0);
        let bytes = std::fs::read(path).map_err(|e| Error::Keyring {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        all.extend_from_slice(&bytes);
    }
    Ok(crate::Sha256::digest(&all))
}

impl Keyring {
    /// Reads every certificate of the keyring files `paths` (binary or
    /// ASCII-armoured, one or several keys each).
    pub fn load(paths: &[PathBuf]) -> Result<Keyring, Error> {
        let mut certs = Vec::new();
        for path in paths {
            let err = |reason: String| Error::Keyring {
                path: path.clone(),
                reason,
            };
            let parser = CertParser::from_file(path).map_err(|e| err(e.to_string()))?;
            let before = certs.len();
            for cert in parser {
                certs.push(cert.map_err(|e| err(e.to_string()))?);
            }
            if certs.len() == before {
                return Err(err("it holds no OpenPGP certificate".into()));
            }
        }
        Ok(Keyring {
            certs,
            paths: paths.to_vec(),
        })
    }

    /// The files the keyring was read from.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    fn describe(&self) -> String {
        self.paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// How verification went, kept by the helper for the caller.
enum Failure {
    Unknown(Vec<String>),
    Bad(String),
}

struct Helper<'a> {
    keyring: &'a Keyring,
    failure: &'a mut Option<Failure>,
}

impl VerificationHelper for Helper<'_> {
    fn get_certs(&mut self, ids: &[KeyHandle]) -> sequoia_openpgp::Result<Vec<Cert>> {
        Ok(self
            .keyring
            .certs
            .iter()
            .filter(|c| {
                c.keys()
                    .any(|k| ids.iter().any(|id| id.aliases(k.key().key_handle())))
            })
            .cloned()
            .collect())
    }

    fn check(&mut self, structure: MessageStructure) -> sequoia_openpgp::Result<()> {
        let mut missing = Vec::new();
        let mut bad = Vec::new();
        let mut groups = 0;
        for layer in structure {
            let MessageLayer::SignatureGroup { results } = layer else {
                bad.push("the message is compressed or encrypted, not clearsigned".to_string());
                continue;
            };
            groups += 1;
            for result in results {
                match result {
                    Ok(_) => return Ok(()),
                    Err(VerificationError::MissingKey { sig }) => {
                        missing.extend(sig.get_issuers().iter().map(|i| i.to_hex()).take(1))
                    }
                    Err(e) => bad.push(e.to_string()),
                }
            }
        }
        let failure = if bad.is_empty() && !missing.is_empty() {
            Failure::Unknown(missing)
        } else if groups == 0 || (bad.is_empty() && missing.is_empty()) {
            Failure::Bad("the file carries no signature".into())
        } else {
            bad.extend(missing.iter().map(|m| format!("signed by unknown key {m}")));
            Failure::Bad(bad.join("; "))
        };
        *self.failure = Some(failure);
        Err(anyhow_error())
    }
}

/// Sequoia wants an `anyhow::Error`; the details travel in the helper.
fn anyhow_error() -> sequoia_openpgp::anyhow::Error {
    sequoia_openpgp::Error::BadSignature("verification failed".into()).into()
}

/// Verifies the clearsigned `data` fetched from `url` against `keyring` and
/// returns the signed text. At least one signature must be good and made
/// by a key of the keyring that is valid now.
pub fn verify_clearsigned(data: &[u8], keyring: &Keyring, url: &str) -> Result<Vec<u8>, Error> {
    let policy = StandardPolicy::new();
    let mut failure = None;
    let helper = Helper {
        keyring,
        failure: &mut failure,
    };
    let bad = |reason: String| Error::BadSignature {
        url: url.to_string(),
        reason,
    };
    let result = VerifierBuilder::from_bytes(data)
        .and_then(|b| b.with_policy(&policy, None, helper))
        .and_then(|mut v| {
            let mut out = Vec::with_capacity(data.len());
            v.read_to_end(&mut out)?;
            if v.message_processed() {
                Ok(out)
            } else {
                Err(
                    sequoia_openpgp::Error::InvalidOperation("message not fully processed".into())
                        .into(),
                )
            }
        });
    match (result, failure) {
        (Ok(out), _) => Ok(out),
        (Err(_), Some(Failure::Unknown(issuers))) => Err(Error::UnknownKey {
            url: url.to_string(),
            issuers: issuers.join(", "),
            keyrings: keyring.describe(),
        }),
        (Err(_), Some(Failure::Bad(reason))) => Err(bad(reason)),
        (Err(e), None) => Err(bad(e.to_string())),
    }
}

//! kod-system: settling a target root — the system settings of a
//! configuration written into the root a transaction built.
//!
//! Settling is planned first, then applied. [`plan`] reads what it needs
//! from the target (accounts files, unit files, os-release, ...) and
//! returns every [`Change`] that would be made, each with the
//! configuration key it comes from, leaving out what is already true in
//! the root: planning again after applying gives nothing, and `--dry-run`
//! shows exactly the list. [`apply`] carries the changes out, writing only
//! through [`kod_root::Root`] (confined to the root, atomic file writes)
//! and running commands in the target only through a [`kod_db::Runner`].
//!
//! One module per step: [`time`] (timezone), [`locale`] (locales and
//! keymap), [`host`] (hostname, hosts, systemd-networkd), [`release`]
//! (os-release, machine-id), [`accounts`] (users and groups, with
//! [`ids`] keeping their numbers stable across generations), [`services`]
//! (settings drop-ins, units enabled and disabled) and [`effects`]
//! (install-stage helper effects), [`boot`] (the initramfs's modules).
//! Debian is the first target.
#![deny(missing_docs)]

use std::collections::BTreeMap;

pub mod accounts;

mod apply;
pub mod boot;
mod boot_report;
mod change;
pub mod effects;
mod error;
pub mod host;
pub mod ids;
pub mod loader;
pub mod locale;
mod password;
mod planner;
pub mod release;
pub mod services;
pub mod time;
mod units;

use kod_config::Config;
use kod_plan::Plan;
use kod_root::Root;

pub use apply::apply;
pub use change::{Action, Change};
pub use error::Error;
pub use ids::IdMap;

use planner::Planner;

/// What settling needs: the typed configuration, its plan, the number of
/// the generation being built and the stable ids kept beside the
/// generations.
///
/// The distribution's own facts (os-release, accounts, units) are read
/// from the target root by [`plan`]: they are whatever the transaction
/// left there.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The configuration (for what the plan leaves out: passwords,
    /// service settings, services switched off).
    pub config: &'a Config,
    /// Its plan.
    pub plan: &'a Plan,
    /// The generation being built (`IMAGE_VERSION`).
    pub generation: u64,
    /// User and group ids of earlier generations.
    pub ids: &'a IdMap,
    /// The units the generation this one is built from enabled (its
    /// record's `enabled_services`): those the configuration no longer
    /// enables are disabled. Empty for a new machine.
    pub previously_enabled: &'a [String],
    /// The logins the generation this one is built from configured: those
    /// the configuration no longer has are removed (their homes kept).
    pub previous_users: &'a [String],
    /// The files install-stage helpers of the generation this one is
    /// built from wrote in its own root (not the shared store): those no
    /// helper writes any more are removed.
    pub previous_files: &'a [std::path::PathBuf],
}

impl<'a> Input<'a> {
    /// The input of settling generation `generation` of `config`.
    pub fn new(config: &'a Config, plan: &'a Plan, generation: u64, ids: &'a IdMap) -> Self {
        Input {
            config,
            plan,
            generation,
            ids,
            previously_enabled: &[],
            previous_users: &[],
            previous_files: &[],
        }
    }

    /// The same input for a generation built from one that enabled
    /// `units` and configured the accounts `users`.
    pub fn after(self, units: &'a [String], users: &'a [String]) -> Self {
        Input {
            previously_enabled: units,
            previous_users: users,
            ..self
        }
    }

    /// The same input for a generation built from one whose helpers wrote
    /// `files` in its root.
    pub fn after_files(self, files: &'a [std::path::PathBuf]) -> Self {
        Input {
            previous_files: files,
            ..self
        }
    }
}

/// What settling a root would do.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The changes, in the order [`apply`] makes them; empty when the
    /// root is settled already.
    pub changes: Vec<Change>,
    /// The id map with every account of the configuration in it: saved by
    /// the caller once the changes are applied.
    pub ids: IdMap,
    /// The system units the configuration enables (the record's
    /// `enabled_services`), sorted.
    pub enabled_services: Vec<String>,
    /// The hash given to each clear password, by login
    /// ([`accounts::Accounts::hashes`]).
    pub password_hashes: BTreeMap<String, String>,
}

/// Plans the settling of `root` for `input`: every step, in order. Reads
/// the root, changes nothing.
pub fn plan(root: &Root, input: &Input) -> Result<Settlement, Error> {
    let mut p = Planner::new(root);
    time::plan(&mut p, input)?;
    locale::plan(&mut p, input)?;
    locale::plan_keymap(&mut p, input)?;
    host::plan(&mut p, input)?;
    host::plan_network(&mut p, input)?;
    release::plan(&mut p, input)?;
    release::plan_machine_id(&mut p)?;
    let (ids, accounts) = accounts::plan(&mut p, input)?;
    services::plan_settings(&mut p, input)?;
    boot::plan(&mut p, input)?;
    loader::plan(&mut p, input)?;
    boot_report::plan(&mut p, input)?;
    effects::plan_files(&mut p, input, &accounts)?;
    effects::plan_removed_files(&mut p, input)?;
    let enabled_services = services::plan_units(&mut p, input)?;
    effects::plan_units_and_commands(&mut p, input, &accounts)?;
    Ok(Settlement {
        changes: p.finish(),
        ids,
        enabled_services,
        password_hashes: accounts.hashes,
    })
}

//! The package engine as kod-env's environments use it: `kod bootstrap`'s
//! minbase root with the packages asked for, `kod pkg install|remove` in
//! it. kod-env reaches it only through its [`kod_env::Engine`] trait; the
//! plans here are what a dry run of `kod env create|install|remove` shows
//! and what the real run carries out.

use std::path::Path;

use kod_install::RemovalPlan;
use kod_report::Report;

use crate::EngineError;
use crate::bootstrap::BootstrapPlan;
use crate::packages::{self, InstallPlan};
use crate::sources::DistroSpec;

/// The variant an environment starts from, as mmdebstrap's default.
pub const ENV_VARIANT: &str = "minbase";

/// The engine for environments: transactions run with `options` and
/// report to `report`.
#[derive(Debug, Clone)]
pub struct EnvEngine {
    options: kod_install::Options,
    report: Report,
}

impl EnvEngine {
    /// An engine whose transactions run with `options` and report to
    /// `report`.
    pub fn new(options: kod_install::Options, report: Report) -> EnvEngine {
        EnvEngine { options, report }
    }

    /// What creating an environment of `distro` (`DISTRO:RELEASE`) with
    /// `packages` installs.
    pub fn plan_create(
        &self,
        distro: &str,
        packages: &[String],
    ) -> Result<BootstrapPlan, EngineError> {
        let spec = DistroSpec::parse(distro)?;
        BootstrapPlan::new(&spec, ENV_VARIANT, packages, None, &self.report)
    }

    /// What installing `packages` into the environment's `root` changes.
    pub fn plan_install(
        &self,
        root: &Path,
        packages: &[String],
    ) -> Result<InstallPlan, EngineError> {
        InstallPlan::new(root, packages, &self.report)
    }

    /// What removing `packages` from the environment's `root` takes out
    /// (refused when installed packages depend on them).
    pub fn plan_remove(
        &self,
        root: &Path,
        packages: &[String],
    ) -> Result<RemovalPlan, EngineError> {
        packages::plan_removal(root, packages, false, false, &self.options)
    }
}

impl kod_env::Engine for EnvEngine {
    fn bootstrap(
        &self,
        target: &Path,
        distro: &str,
        packages: &[String],
    ) -> Result<(), kod_env::EngineError> {
        let plan = self.plan_create(distro, packages)?;
        plan.run(target, &self.options, &self.report)?;
        Ok(())
    }

    fn install(&self, root: &Path, packages: &[String]) -> Result<(), kod_env::EngineError> {
        let plan = self.plan_install(root, packages)?;
        plan.run(&self.options, &self.report)?;
        Ok(())
    }

    fn remove(&self, root: &Path, packages: &[String]) -> Result<(), kod_env::EngineError> {
        let plan = self.plan_remove(root, packages)?;
        packages::remove(root, &plan, &self.options)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use kod_env::Engine;

    use super::*;

    fn engine() -> EnvEngine {
        EnvEngine::new(kod_install::Options::default(), Report::quiet())
    }

    #[test]
    fn a_bad_distribution_fails_before_anything_is_touched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("root");
        let err = engine().bootstrap(&target, "gentoo:1", &[]).unwrap_err();
        assert!(err.to_string().contains("unknown distribution"), "{err}");
        let err = engine().bootstrap(&target, "debian", &[]).unwrap_err();
        assert!(err.to_string().contains("DISTRO:RELEASE"), "{err}");
        assert!(!target.exists());
    }

    #[test]
    fn removing_from_a_root_without_those_packages_is_refused_by_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        let status = dir.path().join("var/lib/dpkg/status");
        std::fs::create_dir_all(status.parent().unwrap()).unwrap();
        std::fs::write(&status, "").unwrap();
        let err = engine()
            .remove(dir.path(), &["hello".to_string()])
            .unwrap_err();
        assert!(err.to_string().contains("hello"), "{err}");
        assert_eq!(std::fs::read_to_string(&status).unwrap(), "");
    }
}

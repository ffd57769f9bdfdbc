//! What every command gets: the command line, the one [`Report`] made from
//! its flags, and the configuration, loaded at most once per command.

use std::cell::OnceCell;
use std::path::PathBuf;

use kod_config::{Config, ConfigError, EvalOptions, SourceFile};
use kod_report::Report;

use crate::cli::Cli;

/// One command's context.
pub struct Context<'a> {
    /// The command line.
    pub cli: &'a Cli,
    /// Where the libraries report, drawn by [`crate::report`].
    pub report: Report,
    configuration: OnceCell<Configuration>,
}

/// The configuration of this command and the file it came from.
pub struct Configuration {
    /// The file evaluated.
    pub file: PathBuf,
    /// What it describes.
    pub config: Config,
    /// Its source files (the main file, then its modules), as read.
    pub files: Vec<SourceFile>,
}

impl<'a> Context<'a> {
    /// The context of `cli`'s command, reporting to `report`.
    pub fn new(cli: &'a Cli, report: Report) -> Context<'a> {
        Context {
            cli,
            report,
            configuration: OnceCell::new(),
        }
    }

    /// The configuration (`-c`, else the default places), evaluated on
    /// first use, its `print` going to the report; later calls get the
    /// same one.
    pub fn configuration(&self) -> Result<&Configuration, ConfigError> {
        if let Some(c) = self.configuration.get() {
            return Ok(c);
        }
        let file = kod_config::locate(self.cli.config.as_deref())?;
        let options = EvalOptions {
            report: self.report.clone(),
            ..EvalOptions::default()
        };
        let (config, files) = kod_config::load_files(&file, &options)?;
        Ok(self.configuration.get_or_init(|| Configuration {
            file,
            config,
            files,
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use kod_report::{Level, Recorder};

    use super::*;

    #[test]
    fn the_configuration_is_evaluated_once_and_prints_to_the_report() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("configuration.lua"),
            "print('evaluating')\nreturn { repos = { official = { type = 'debian', suite = 'bookworm' } } }",
        )
        .unwrap();
        let cli = Cli::parse_from([
            "kod".as_ref(),
            "-c".as_ref(),
            dir.path().as_os_str(),
            "plan".as_ref(),
        ]);
        let rec = Recorder::new(false);
        let ctx = Context::new(&cli, Report::to(rec.clone()));
        let first = ctx.configuration().unwrap();
        assert_eq!(first.file, dir.path().join("configuration.lua"));
        let again = ctx.configuration().unwrap();
        assert!(std::ptr::eq(first, again));
        assert_eq!(rec.messages(Level::Output), ["evaluating"]);
    }

    #[test]
    fn a_missing_configuration_is_an_error_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let cli = Cli::parse_from([
            "kod".as_ref(),
            "-c".as_ref(),
            dir.path().join("absent.lua").as_os_str(),
            "plan".as_ref(),
        ]);
        let ctx = Context::new(&cli, Report::quiet());
        for _ in 0..2 {
            assert!(matches!(
                ctx.configuration(),
                Err(ConfigError::NotFound { .. })
            ));
        }
    }
}

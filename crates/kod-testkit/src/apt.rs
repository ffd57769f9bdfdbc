//! apt with a private state (sources list, lists, cache, status), for
//! comparing kod with apt on the same sources without touching the host's
//! apt configuration.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

/// apt-get and apt-cache on a private state directory, for amd64.
pub struct PrivateApt {
    opts: Vec<String>,
}

impl PrivateApt {
    /// State under `work` reading the sources.list lines `deb_lines`
    /// (`deb [arch=amd64] URL SUITE COMPONENTS`), then `apt-get update`.
    /// Commands see an empty dpkg status unless given one.
    pub fn new(work: &Path, deb_lines: &[String]) -> PrivateApt {
        let lists = work.join("lists");
        let parts = work.join("parts");
        let cache = work.join("cache");
        for d in [&lists, &lists.join("partial"), &parts, &cache] {
            std::fs::create_dir_all(d).unwrap();
        }
        let status = work.join("status");
        std::fs::write(&status, "").unwrap();
        let sources_list = work.join("sources.list");
        std::fs::write(&sources_list, deb_lines.join("\n") + "\n").unwrap();
        let opts = vec![
            format!("Dir::State::Lists={}", lists.display()),
            format!("Dir::Cache={}", cache.display()),
            format!("Dir::Etc::SourceList={}", sources_list.display()),
            format!("Dir::Etc::SourceParts={}", parts.display()),
            format!("Dir::State::Status={}", status.display()),
            format!(
                "Dir::Etc::Preferences={}",
                work.join("preferences").display()
            ),
            format!("Dir::Etc::PreferencesParts={}", parts.display()),
            "APT::Architecture=amd64".to_string(),
            "APT::Architectures=amd64".to_string(),
            "Acquire::Languages=none".to_string(),
            "Debug::NoLocking=1".to_string(),
        ];
        let apt = PrivateApt { opts };
        apt.ok("apt-get", &["-q", "update"], None);
        apt
    }

    /// `program` (apt-get, apt-cache) with `args`, on the dpkg status file
    /// `status` when given.
    fn command(&self, program: &str, args: &[&str], status: Option<&Path>) -> Command {
        let mut c = Command::new(program);
        for o in &self.opts {
            c.args(["-o", o]);
        }
        if let Some(s) = status {
            c.arg("-o")
                .arg(format!("Dir::State::Status={}", s.display()));
        }
        c.args(args);
        c
    }

    /// Runs `program` (apt-get, apt-cache) with `args`, on the dpkg status
    /// file `status` when given.
    pub fn run(&self, program: &str, args: &[&str], status: Option<&Path>) -> Output {
        self.command(program, args, status)
            .output()
            .unwrap_or_else(|e| panic!("running {program} (apt-get install apt): {e}"))
    }

    /// [`run`](PrivateApt::run), which must succeed; returns stdout.
    pub fn ok(&self, program: &str, args: &[&str], status: Option<&Path>) -> Vec<u8> {
        crate::debs::run(&mut self.command(program, args, status))
    }
}

/// What `apt-get install --simulate` printed it would install: `name
/// version` per `Inst` line ("Inst git (1:2.39.5-0+deb12u2 Debian:12.12
/// [amd64])", or "Inst x [old] (new ...)" for an upgrade).
pub fn simulated_installs(stdout: &str) -> BTreeSet<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Inst "))
        .map(|l| {
            let name = l.split_whitespace().next().unwrap_or_default();
            let version = l
                .split_once('(')
                .and_then(|(_, v)| v.split_whitespace().next())
                .unwrap_or_default();
            format!("{name} {version}")
        })
        .collect()
}

//! The `kod` binary: parses the command line, calls the library crates,
//! prints their results and draws what they report. Nothing else lives
//! here: each subcommand's glue is a module of `commands`.

mod cli;
mod commands;
mod context;
mod output;
mod plan_view;
mod private_mounts;
mod report;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use context::Context;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = private_mounts::reenter(&cli.command) {
        return code;
    }
    // With -d, the commands kod would run are the -v lines.
    let report = report::for_command(cli.verbose || cli.debug, !cli.command.json());
    // The libraries' tracing warnings (a damaged stored index, a cached
    // file of the wrong size) reach stderr as warnings of the report.
    tracing_subscriber::fmt()
        .with_writer(report::warnings(report.clone()))
        .with_max_level(tracing::Level::WARN)
        .without_time()
        .with_target(false)
        .with_level(false)
        .with_ansi(false)
        .init();
    match run(&Context::new(&cli, report)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kod: error: {}{}", error_chain(&e), flag_hint(&e, &cli));
            ExitCode::FAILURE
        }
    }
}

/// What the command line can do about an error, in its flags' words
/// (libraries say it in words of their own).
fn flag_hint(e: &anyhow::Error, cli: &Cli) -> &'static str {
    let locked = e.chain().any(|c| {
        matches!(
            transaction(c),
            Some(kod_install::Error::Locked { .. })
                | Some(kod_install::Error::Db(kod_db::Error::DpkgLocked { .. }))
        )
    });
    if locked && cli.no_wait {
        " (run again without --no-wait to wait for it)"
    } else {
        ""
    }
}

/// The transaction error `c` is or wraps.
fn transaction<'a>(c: &'a (dyn std::error::Error + 'static)) -> Option<&'a kod_install::Error> {
    c.downcast_ref::<kod_install::Error>()
        .or(match c.downcast_ref::<kod_engine::EngineError>() {
            Some(kod_engine::EngineError::Install(e)) => Some(e),
            _ => None,
        })
}

/// An error and its causes on one line. Most library errors already say
/// their cause in their own message; a cause is added only when it is not.
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(ctx: &Context) -> anyhow::Result<ExitCode> {
    match &ctx.cli.command {
        Command::Plan { json } => commands::plan::run(ctx, *json),
        Command::Env { action } => commands::env::run(ctx, action),
        Command::Pkg { action } => commands::pkg::run(ctx, action),
        Command::Bootstrap {
            distro,
            dir,
            variant,
            include,
            mirror,
            dry_run,
            json,
        } => commands::bootstrap::run(
            ctx,
            commands::bootstrap::Args {
                distro,
                dir,
                variant,
                include,
                mirror: mirror.as_deref(),
                dry_run: *dry_run,
                json: *json,
            },
        ),
        install @ Command::Install { .. } => commands::install::run(ctx, install),
        Command::Rebuild {
            target,
            image,
            new_generation,
            update,
            dry_run,
            json,
        } => commands::rebuild::run(
            ctx,
            commands::rebuild::Args {
                target: target.as_deref(),
                image: image.as_deref(),
                new_generation: *new_generation,
                update: *update,
                dry_run: dry_run.dry_run,
                json: json.json,
            },
        ),
        Command::Run {
            name,
            volume,
            command,
        } => commands::env::run_in(ctx, name, volume, command),
        Command::Shell {
            packages,
            root,
            env,
            keep,
            command,
        } => commands::shell::run(
            ctx,
            commands::shell::Args {
                packages,
                root,
                env: env.as_deref(),
                keep: keep.as_deref(),
                command,
            },
        ),
        Command::Generations { action, flags } => {
            commands::generations::run(ctx, action.as_ref(), flags)
        }
        Command::Vm {
            image,
            generation,
            check,
            run,
            timeout,
            json,
        } => commands::vm::run(
            ctx,
            commands::vm::Args {
                image,
                generation: *generation,
                check: *check,
                run,
                timeout: *timeout,
                json: json.json,
            },
        ),
        other => Ok(commands::not_implemented(other.name())),
    }
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    /// An error that says its cause in its message and also returns it
    /// as its source, as the library errors do.
    #[derive(Debug)]
    struct Says(std::io::Error);

    impl std::fmt::Display for Says {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "cannot open /x: {}", self.0)
        }
    }

    impl std::error::Error for Says {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Says(io)).context("bootstrapping");
        let text = error_chain(&e);
        assert_eq!(text.matches("entity not found").count(), 1, "{text}");
        assert!(
            text.starts_with("bootstrapping: cannot open /x: "),
            "{text}"
        );
    }
}

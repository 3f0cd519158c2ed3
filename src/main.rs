//! The `pgmux` binary: PgBouncer's command line (`pgmux [-d] [-q] [-v] [-u USER] CONFIG`),
//! logging, the process model, the runtime; everything else is `app::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgAction, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pgmux",
    about = "PostgreSQL connection pooler",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Settings file: pooler.toml, or PgBouncer's pgbouncer.ini.
    #[arg(value_name = "CONFIG")]
    config_file: Option<PathBuf>,
    /// Settings file, as an option.
    #[arg(
        long = "config",
        short = 'c',
        value_name = "FILE",
        conflicts_with = "config_file"
    )]
    config: Option<PathBuf>,
    /// Validate the settings file and exit.
    #[arg(long)]
    check: bool,
    /// Run in the background (needs `pidfile`; log to `logfile`).
    #[arg(short = 'd', long = "daemon")]
    daemon: bool,
    /// Run quietly: nothing on stderr (the logfile still gets everything).
    #[arg(short = 'q', long = "quiet")]
    quiet: bool,
    /// Increase verbosity (-v debug, -vv trace).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,
    /// Switch to this OS user at startup.
    #[arg(short = 'u', long = "user", value_name = "USERNAME")]
    user: Option<String>,
    /// Print the version and exit.
    #[arg(short = 'V', long = "version")]
    version: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Print the pooler.toml equivalent of a pgbouncer.ini.
    Convert {
        #[arg(value_name = "PGBOUNCER_INI")]
        ini: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("{}", pgmux::version::VERSION_LINE);
        return ExitCode::SUCCESS;
    }
    let quiet = cli.quiet || cli.daemon;
    if let Some(Command::Convert { ini }) = &cli.command {
        return convert(ini);
    }
    let path = cli
        .config
        .or(cli.config_file)
        .unwrap_or_else(|| PathBuf::from("pooler.toml"));
    // Warnings about the file are logged as plain text: the log format is in the file.
    let loaded = pgmux::logging::during_startup(cli.verbose, quiet, || pgmux::config::load(&path));
    let mut settings = match loaded {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("pgmux: {error}");
            return ExitCode::FAILURE;
        }
    };
    pgmux::logging::init(cli.verbose, quiet, settings.log_format);
    if cli.check {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    if let Some(user) = cli.user {
        settings.user = Some(user);
    }
    if let Err(message) = prepare_process(&settings, cli.daemon) {
        eprintln!("pgmux: {message}");
        return ExitCode::FAILURE;
    }
    raise_file_limit();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if settings.workers > 0 {
        runtime.worker_threads(settings.workers);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("pgmux: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(pgmux::app::run(settings.clone()));
    pgmux::process::remove_pidfile(&settings);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("pgmux: {error}");
            ExitCode::FAILURE
        }
    }
}

fn convert(ini: &std::path::Path) -> ExitCode {
    match pgmux::convert::convert(ini) {
        Ok((toml, warnings)) => {
            for warning in warnings {
                eprintln!("pgmux: {}", warning.message);
            }
            print!("{toml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pgmux: {error}");
            ExitCode::FAILURE
        }
    }
}

/// PgBouncer's order: switch user, open the log file, check the pid file, daemonize,
/// write the pid file. All before the runtime's threads exist (`fork` keeps only one).
fn prepare_process(settings: &pgmux::config::Settings, daemon: bool) -> Result<(), String> {
    if let Some(user) = &settings.user {
        pgmux::process::switch_user(user)?;
    }
    if let Some(logfile) = &settings.logfile {
        pgmux::logging::set_logfile(Some(logfile))
            .map_err(|error| format!("cannot open logfile {}: {error}", logfile.display()))?;
    }
    pgmux::logging::set_syslog(settings);
    if let Some(pidfile) = &settings.pidfile {
        pgmux::process::check_pidfile(pidfile)?;
    }
    if daemon {
        if settings.pidfile.is_none() {
            return Err("daemon mode (-d) needs pidfile to be set".to_owned());
        }
        if settings.logfile.is_none() {
            tracing::warn!("daemon mode without logfile: log lines are discarded");
        }
        pgmux::process::daemonize().map_err(|error| format!("cannot daemonize: {error}"))?;
    }
    if let Some(pidfile) = &settings.pidfile {
        pgmux::process::write_pidfile(pidfile)
            .map_err(|error| format!("cannot write pidfile {}: {error}", pidfile.display()))?;
    }
    Ok(())
}

/// Every client and server connection is a file descriptor: a pooler holding thousands of
/// clients needs more than the usual soft limit of 1,024, so take what the hard limit allows.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::warn!("could not raise the open file limit");
            }
        }
    }
}

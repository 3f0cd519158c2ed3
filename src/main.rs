//! The `pgmux` binary: command line, logging, runtime; everything else is `app::run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "pgmux", version, about = "PostgreSQL connection pooler")]
struct Cli {
    /// Settings file (pooler.toml).
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli
        .config
        .or(cli.config_file)
        .unwrap_or_else(|| PathBuf::from("pooler.toml"));
    let settings = match pgmux::config::load(&path) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("pgmux: {error}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(settings.log_format);
    if cli.check {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
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
    match runtime.block_on(pgmux::app::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pgmux: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `log_format`: text (the default) or one JSON object per line.
fn init_logging(format: pgmux::config::LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        pgmux::config::LogFormat::Json => builder.json().init(),
        pgmux::config::LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
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

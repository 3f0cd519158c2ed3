//! Where log lines go: stderr (unless `-q` or `-d`), and PgBouncer's `logfile` as well
//! when set. The file is opened after the settings are read and reopened on reload, so
//! log rotation works as with PgBouncer (`kill -HUP` after moving the file).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tracing_subscriber::fmt::MakeWriter;

use crate::syslog::Syslog;

struct Targets {
    stderr: bool,
    file: Option<(PathBuf, File)>,
    syslog: Option<Syslog>,
}

static TARGETS: Mutex<Targets> = Mutex::new(Targets {
    stderr: true,
    file: None,
    syslog: None,
});

fn targets() -> std::sync::MutexGuard<'static, Targets> {
    TARGETS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the global subscriber. `verbosity` counts `-v`s (debug, then trace);
/// `RUST_LOG` wins when set.
pub fn init(verbosity: u8, quiet: bool, format: crate::config::LogFormat) {
    use std::io::IsTerminal;
    targets().stderr = !quiet;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_writer(LogWriter);
    let _ = match format {
        crate::config::LogFormat::Json => builder.json().try_init(),
        crate::config::LogFormat::Text => builder
            .with_ansi(
                !quiet && io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            )
            .try_init(),
    };
}

/// Runs `f` (reading the settings, before the log format is known) with a plain-text
/// logger, so warnings about the settings file are not lost.
pub fn during_startup<T>(verbosity: u8, quiet: bool, f: impl FnOnce() -> T) -> T {
    targets().stderr = !quiet;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter(verbosity))
        .with_writer(LogWriter)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f)
}

fn filter(verbosity: u8) -> tracing_subscriber::EnvFilter {
    let level = match verbosity {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
}

/// Stops writing to stderr (after daemonizing, stderr is /dev/null anyway).
pub fn silence_stderr() {
    targets().stderr = false;
}

/// Starts (or, with `None`, stops) logging to `path`, appending.
pub fn set_logfile(path: Option<&Path>) -> io::Result<()> {
    let file = match path {
        Some(path) => Some((path.to_path_buf(), open(path)?)),
        None => None,
    };
    targets().file = file;
    Ok(())
}

/// Reopens the log file (after rotation) or switches to a new one; on failure the old
/// file is kept and the reason logged.
pub fn reopen(path: Option<&Path>) {
    if let Err(error) = set_logfile(path) {
        tracing::error!(
            "cannot open logfile {}: {error}",
            path.map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
}

/// Starts, retargets or (with `None`) stops sending lines to syslog: PgBouncer's
/// `syslog`, `syslog_ident` and `syslog_facility`, at startup and on reload. A daemon that
/// cannot be reached is reported and the other targets go on.
pub fn set_syslog(settings: &crate::config::Settings) {
    let syslog = settings.syslog.as_ref().and_then(|wanted| {
        Syslog::connect(&wanted.socket, &wanted.ident, wanted.facility)
            .map_err(|error| {
                tracing::error!(
                    "cannot reach syslog at {}: {error}",
                    wanted.socket.display()
                )
            })
            .ok()
    });
    targets().syslog = syslog;
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::with_capacity(256), tracing::Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        LineWriter(Vec::with_capacity(256), *meta.level())
    }
}

/// Buffers one event and writes it whole to each target when dropped, so lines from
/// different threads never interleave. The level becomes syslog's severity.
pub struct LineWriter(Vec<u8>, tracing::Level);

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let mut targets = targets();
        if targets.stderr {
            let _ = io::stderr().write_all(&self.0);
        }
        if let Some((_, file)) = targets.file.as_mut() {
            let _ = file.write_all(&self.0);
        }
        if let Some(syslog) = &targets.syslog {
            syslog.send(self.1, &self.0);
        }
    }
}

//! Third-party client drivers for the client-compatibility suite (tests/it/clients):
//! Python's psycopg 3 and asyncpg in a venv, and node-postgres in an npm project, both
//! under `target/client-drivers/`, installed from PyPI and npm on first use so that
//! `cargo test` alone works on a fresh machine.
//!
//! Installed once per test run (a `OnceLock`) and once per target directory (a marker
//! file holding the pinned requirements; a file lock serializes concurrent runs). An
//! install that fails panics with the pip/npm output: a missing driver is a failed
//! test, never a silently skipped one.

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::process::run_tool;

/// Pinned so every machine tests the same driver code; bump deliberately.
const PYTHON_REQUIREMENTS: &[&str] = &["psycopg[binary]==3.3.9", "asyncpg==0.32.0"];
const NODE_PACKAGES: &[&str] = &["pg@8.23.1"];

/// Generous: a cold install downloads a few MB from the registries.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// Where the drivers live: next to the build output, so `cargo clean` removes them.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .join("client-drivers")
}

/// A `python` command of the venv holding psycopg and asyncpg, running `script`.
/// Installs the venv on first use (blocking: call via `spawn_blocking` from async code).
pub fn python_command(script: &Path) -> Command {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let python = PYTHON.get_or_init(install_python);
    let python = python.as_ref().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(python);
    // -u: unbuffered, so a timed-out script still shows how far it got.
    cmd.arg("-u").arg(script);
    cmd
}

/// A `node` command that resolves `require('pg')` from the suite's npm project.
/// Installs it on first use (blocking: call via `spawn_blocking` from async code).
pub fn node_command(script: &Path) -> Command {
    static NODE_MODULES: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let modules = NODE_MODULES.get_or_init(install_node);
    let modules = modules.as_ref().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new("node");
    cmd.arg(script).env("NODE_PATH", modules);
    cmd
}

fn install_python() -> Result<PathBuf, String> {
    let root = root();
    let venv = root.join("venv");
    let python = venv.join("bin").join("python");
    let wanted = PYTHON_REQUIREMENTS.join("\n");
    let _lock = FileLock::acquire(&root, "venv")?;
    let marker = venv.join(".pgmux-requirements");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists()
    {
        return Ok(python);
    }
    let started = Instant::now();
    eprintln!("client drivers: installing {PYTHON_REQUIREMENTS:?} into {venv:?}");
    // A half-built venv from an interrupted run must not be reused.
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv (on Debian/Ubuntu this needs the python3-venv package)",
    )?;
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
            ])
            .args(PYTHON_REQUIREMENTS),
        "pip install",
    )?;
    run(
        Command::new(&python).args([
            "-c",
            "import psycopg, asyncpg; print(psycopg.__version__, asyncpg.__version__)",
        ]),
        "importing the installed drivers",
    )?;
    std::fs::write(&marker, &wanted).map_err(|e| format!("write {marker:?}: {e}"))?;
    eprintln!("client drivers: venv ready in {:?}", started.elapsed());
    Ok(python)
}

fn install_node() -> Result<PathBuf, String> {
    let root = root();
    let project = root.join("node");
    let modules = project.join("node_modules");
    let wanted = NODE_PACKAGES.join("\n");
    let _lock = FileLock::acquire(&root, "node")?;
    let marker = project.join(".pgmux-packages");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str())
        && modules.join("pg").exists()
    {
        return Ok(modules);
    }
    let started = Instant::now();
    eprintln!("client drivers: installing {NODE_PACKAGES:?} into {project:?}");
    let _ = std::fs::remove_dir_all(&project);
    std::fs::create_dir_all(&project).map_err(|e| format!("create {project:?}: {e}"))?;
    // A package.json of its own, so npm never walks up into some parent project.
    std::fs::write(
        project.join("package.json"),
        r#"{ "name": "pgmux-client-drivers", "private": true }"#,
    )
    .map_err(|e| format!("write package.json: {e}"))?;
    run(
        Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--save-exact"])
            .args(NODE_PACKAGES)
            .current_dir(&project),
        "npm install",
    )?;
    run(
        Command::new("node")
            .args(["-e", "console.log(require('pg/package.json').version)"])
            .env("NODE_PATH", &modules),
        "requiring the installed pg",
    )?;
    std::fs::write(&marker, &wanted).map_err(|e| format!("write {marker:?}: {e}"))?;
    eprintln!(
        "client drivers: node project ready in {:?}",
        started.elapsed()
    );
    Ok(modules)
}

/// Runs an install step; its full output becomes the error if it fails.
fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let output = run_tool(cmd, INSTALL_TIMEOUT);
    if output.success() {
        Ok(())
    } else {
        Err(format!(
            "installing client drivers: {what} failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status, output.stdout, output.stderr
        ))
    }
}

/// An exclusive `flock` on `<root>/.<name>.lock`, released when dropped: two test runs
/// sharing a target directory must not install into the same place at once.
struct FileLock(#[allow(dead_code)] File);

impl FileLock {
    fn acquire(root: &Path, name: &str) -> Result<Self, String> {
        std::fs::create_dir_all(root).map_err(|e| format!("create {root:?}: {e}"))?;
        let path = root.join(format!(".{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {path:?}: {e}"))?;
        // SAFETY: flock on a file descriptor this function owns; no memory involved.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!(
                "lock {path:?}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Self(file))
    }
}

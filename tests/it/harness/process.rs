//! Child processes: output capture, client tools, and the OS commands the harness
//! shells out to (no libc dependency, so users and signals go through commands).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Lines of a child's stdout and stderr, interleaved in arrival order.
pub type SharedLog = Arc<Mutex<Vec<String>>>;

/// Spawns `cmd` with stdout and stderr each drained by a thread into one shared log,
/// so the child never blocks on a full pipe and tests can read its output any time.
pub fn spawn_captured(
    cmd: &mut Command,
) -> std::io::Result<(Child, SharedLog, Vec<JoinHandle<()>>)> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let logs = SharedLog::default();
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let readers = vec![
        capture_lines(stdout, logs.clone()),
        capture_lines(stderr, logs.clone()),
    ];
    Ok((child, logs, readers))
}

fn capture_lines(pipe: impl Read + Send + 'static, logs: SharedLog) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut raw = Vec::new();
        // Byte lines + lossy decoding: a stray non-UTF-8 byte must not end the capture.
        while matches!(reader.read_until(b'\n', &mut raw), Ok(n) if n > 0) {
            let line = strip_ansi(String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']));
            logs.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            raw.clear();
        }
    })
}

/// Removes terminal colour sequences (`ESC [ ... letter`) in case colours are forced.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics with both output streams unless the tool exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "tool failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs a client tool (psql, pgbench) to completion with stdin closed; panics with
/// its output if it is still running after `timeout`. Blocking: from async tests
/// whose in-process connections must keep running, call it via `spawn_blocking`.
pub fn run_tool(cmd: &mut Command, timeout: Duration) -> ToolOutput {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    // Drained on threads so a chatty tool never blocks on a full pipe.
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll tool") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => ToolOutput { status, stdout, stderr },
        None => panic!(
            "{cmd:?} did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        ),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

pub fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

pub fn ensure_os_user_exists(user: &str) -> Result<(), String> {
    let exists = Command::new("id")
        .arg("-u")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if exists {
        return Ok(());
    }
    run_checked(Command::new("useradd").args(["-r", user]))
}

pub fn run_checked(cmd: &mut Command) -> Result<(), String> {
    let output = cmd.output().map_err(|e| format!("run {cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Single-quotes `s` for `sh -c` scripts.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

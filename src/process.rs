//! PgBouncer's process model: `-d` daemonizes, `pidfile` is written (and refused if
//! another live process holds it), `-u USER` / `user = ` switch to an unprivileged user.
//! All of this runs before the tokio runtime starts: `fork` only keeps the calling
//! thread, so it must come while there is just one.

use std::ffi::CString;
use std::io;
use std::path::Path;

use crate::config::Settings;

/// Detaches from the terminal: fork (the parent exits 0), new session, fork again so
/// the daemon can never reacquire a terminal, stdio to /dev/null, cwd kept (relative
/// paths in the settings still resolve).
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called before any other thread exists; the parent only calls _exit.
    unsafe {
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() == -1 {
            return Err(io::Error::last_os_error());
        }
        match libc::fork() {
            -1 => return Err(io::Error::last_os_error()),
            0 => {}
            _ => libc::_exit(0),
        }
        let null = CString::new("/dev/null").expect("no NUL");
        let fd = libc::open(null.as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            for target in [0, 1, 2] {
                libc::dup2(fd, target);
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
    crate::logging::silence_stderr();
    Ok(())
}

/// Refuses to start when the pid file names a live process, as PgBouncer does.
pub fn check_pidfile(path: &Path) -> Result<(), String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return Ok(());
    };
    // SAFETY: signal 0 only checks that the process exists.
    let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
    if alive && pid != std::process::id() as libc::pid_t {
        return Err(format!(
            "pidfile {} exists and process {pid} is running: another instance?",
            path.display()
        ));
    }
    Ok(())
}

pub fn write_pidfile(path: &Path) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// Removes the pid file at exit, if it is still ours.
pub fn remove_pidfile(settings: &Settings) {
    let Some(path) = &settings.pidfile else {
        return;
    };
    let ours = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

/// Switches to `user`'s uid, gid and groups. Already being that user is fine.
pub fn switch_user(user: &str) -> Result<(), String> {
    let name = CString::new(user).map_err(|_| format!("invalid user name {user:?}"))?;
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: getpwnam_r writes into `entry` and `buffer`, both live and sized here.
    let (uid, gid) = unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let status = libc::getpwnam_r(
            name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        );
        if status != 0 || found.is_null() {
            return Err(format!("could not find user '{user}' to switch to"));
        }
        (entry.pw_uid, entry.pw_gid)
    };
    // SAFETY: plain system calls on integers and a live C string.
    unsafe {
        if libc::geteuid() == uid {
            return Ok(());
        }
        let failed = |what: &str| format!("{what} failed: {}", io::Error::last_os_error());
        if libc::setgid(gid) != 0 {
            return Err(failed("setgid"));
        }
        if libc::initgroups(name.as_ptr(), gid as _) != 0 {
            return Err(failed("initgroups"));
        }
        if libc::setuid(uid) != 0 {
            return Err(failed("setuid"));
        }
    }
    Ok(())
}

//! Who is on the other end of a unix socket: the kernel's peer credentials
//! (SO_PEERCRED), mapped to an OS user name. PgBouncer lets the OS user that runs it
//! into the admin console this way, and pg_hba's `peer` method matches on it.

use super::Stream;

/// The OS user name of the process at the other end of a unix-socket connection;
/// `None` on TCP/TLS, or when the uid has no passwd entry.
pub fn peer_os_user(stream: &Stream) -> Option<String> {
    let Stream::Unix(socket) = stream else {
        return None;
    };
    let uid = socket.peer_cred().ok()?.uid();
    user_name(uid)
}

/// The name of the OS user running pgmux.
pub fn own_os_user() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    user_name(unsafe { libc::geteuid() })
}

fn user_name(uid: libc::uid_t) -> Option<String> {
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut scratch = vec![0 as libc::c_char; 4096];
    // SAFETY: every pointer refers to live memory of the size passed; getpwuid_r (unlike
    // getpwuid) is thread-safe and writes the strings into `scratch`.
    let status = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            scratch.as_mut_ptr(),
            scratch.len(),
            &mut result,
        )
    };
    if status != 0 || result.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points at a NUL-terminated string inside `scratch`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unix_peer_is_this_process_user() {
        let (ours, _theirs) = tokio::net::UnixStream::pair().unwrap();
        let stream = Stream::Unix(ours);
        assert_eq!(peer_os_user(&stream), own_os_user());
        assert!(own_os_user().is_some_and(|name| !name.is_empty()));
    }
}

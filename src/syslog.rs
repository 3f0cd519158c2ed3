//! PgBouncer's `syslog`: log lines also go to the local syslog daemon, tagged
//! `ident[pid]` with `syslog_facility`. One datagram per line on the daemon's socket
//! (`/dev/log`, or `syslog_socket`), in the BSD format every Linux syslog daemon and
//! journald accept (`<PRI>ident[pid]: message`, the daemon adds the time). Written out
//! rather than through libc's syslog(3) so the socket can be chosen (containers, tests).

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Where lines go and how they are tagged.
#[derive(Debug)]
pub struct Syslog {
    socket: UnixDatagram,
    ident: String,
    facility: u8,
    pid: u32,
}

/// The facility codes of syslog(3), by the names PgBouncer's `syslog_facility` takes.
pub fn facility_code(name: &str) -> Option<u8> {
    let code = match name.to_ascii_lowercase().as_str() {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "lpr" => 6,
        "news" => 7,
        "uucp" => 8,
        "cron" => 9,
        "authpriv" => 10,
        "ftp" => 11,
        local => {
            let n: u8 = local.strip_prefix("local")?.parse().ok()?;
            if n > 7 {
                return None;
            }
            16 + n
        }
    };
    Some(code)
}

/// The syslog severity of a tracing level.
fn severity(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        _ => 7,
    }
}

impl Syslog {
    pub fn connect(path: &Path, ident: &str, facility: u8) -> std::io::Result<Syslog> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        // A full daemon queue must not stall the pooler: such lines are dropped.
        socket.set_nonblocking(true)?;
        Ok(Syslog {
            socket,
            ident: ident.to_owned(),
            facility,
            pid: std::process::id(),
        })
    }

    /// Sends one line (the trailing newline dropped).
    pub fn send(&self, level: tracing::Level, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let priority = self.facility * 8 + severity(level);
        let mut datagram = format!("<{priority}>{}[{}]: ", self.ident, self.pid).into_bytes();
        datagram.extend_from_slice(line);
        let _ = self.socket.send(&datagram);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_priority_ident_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let daemon = UnixDatagram::bind(&path).unwrap();
        let syslog = Syslog::connect(&path, "pgbouncer", facility_code("local0").unwrap()).unwrap();
        syslog.send(tracing::Level::WARN, b"closing because: x\n");
        let mut buf = [0u8; 256];
        let n = daemon.recv(&mut buf).unwrap();
        let expected = format!("<132>pgbouncer[{}]: closing because: x", std::process::id());
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), expected);
    }

    #[test]
    fn facilities_by_name() {
        assert_eq!(facility_code("daemon"), Some(3));
        assert_eq!(facility_code("LOCAL7"), Some(23));
        assert_eq!(facility_code("local8"), None);
        assert_eq!(facility_code("nonsense"), None);
    }
}

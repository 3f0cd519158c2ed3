//! Who reaches the admin console, and with which rights: a matter of the settings
//! (`admin_users`, `stats_users`), decided at login before the console itself runs.

use super::Settings;

/// The names that reach the console instead of a pool.
pub const CONSOLE_DATABASES: [&str; 2] = ["pgbouncer", "pgmux"];

pub fn is_console(database: &str) -> bool {
    CONSOLE_DATABASES.contains(&database)
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleRole {
    /// `admin_users`: every command.
    Admin,
    /// `stats_users`: SHOW only.
    Stats,
}

impl Settings {
    /// The console rights of `user`, if any.
    pub fn console_role(&self, user: &str) -> Option<ConsoleRole> {
        if self.admin_users.iter().any(|u| u == user) {
            Some(ConsoleRole::Admin)
        } else if self.stats_users.iter().any(|u| u == user) {
            Some(ConsoleRole::Stats)
        } else {
            None
        }
    }
}

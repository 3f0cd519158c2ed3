//! Reading the SQL a client sends, only where pgmux must act on it: settings it changes
//! (`settings`), SQL-level `PREPARE`/`EXECUTE`/`DEALLOCATE` (`prepare`), and features that
//! cannot work when pooling by transaction (`session_only`).

pub mod prepare;
pub mod session_only;
pub mod settings;

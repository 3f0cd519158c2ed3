//! The single integration-test binary: one crate, so the shared PostgreSQL cluster
//! is started once for all tests.
mod harness;

mod auth;
mod copy;
mod fuzz_input;
mod harness_smoke;
mod ini_config;
mod ini_process;
mod hostile_input;
mod lifecycle;
mod malformed_input;
mod modes;
mod params;
mod pool_limits;
mod pooling;
mod prepared;
mod queries;
mod raw_wire;
mod resilience;
mod session_only;
mod session_settings;
mod support;
mod timeouts;
mod wire;

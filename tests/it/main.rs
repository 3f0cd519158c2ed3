//! The single integration-test binary: one crate, so the shared PostgreSQL cluster
//! is started once for all tests.
mod harness;
mod support;
mod wire;

mod auth;
mod harness_smoke;
mod lifecycle;
mod malformed_input;
mod queries;
mod resilience;
mod timeouts;

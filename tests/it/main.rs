//! The single integration-test binary: one crate, so the shared PostgreSQL cluster
//! is started once for all tests.
mod harness;

mod auth;
mod copy;
mod harness_smoke;
mod params;
mod queries;
mod raw_wire;

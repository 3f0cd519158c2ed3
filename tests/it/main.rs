//! The single integration-test binary: one crate, so the shared PostgreSQL cluster
//! is started once for all tests.
mod harness;

mod auth;
mod harness_smoke;
mod modes;
mod pool_limits;
mod pooling;
mod prepared;
mod queries;

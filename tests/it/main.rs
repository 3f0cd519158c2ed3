//! The single integration-test binary: one crate, so the shared PostgreSQL cluster
//! is started once for all tests.
mod harness;

mod admin_console;
mod admin_control;
mod admin_metrics;
mod admin_shapes;
mod admin_states;
mod admin_support;
mod auth;
mod clients;
mod copy;
mod drain;
mod fuzz_input;
mod harness_smoke;
mod hostile_input;
mod ini_config;
mod ini_process;
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
mod scale_out;
mod scram_keys;
mod session_only;
mod session_settings;
mod support;
mod timeouts;
mod tls_client;
mod tls_server;
mod wire;

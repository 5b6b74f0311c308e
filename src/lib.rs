//! pagefleet as a library: what the binary's commands and the tests share.
//!
//! [`local`] starts the whole pipeline in one process; [`home`] finds the
//! runtime the bootstrap installed; [`nats_server`] runs a private
//! nats-server; [`probes`] serves a stage's health checks and metrics.

pub mod home;
pub mod local;
pub mod nats_server;
pub mod probes;

//! pagefleet as a library: what the binary's commands and the tests share.
//!
//! [`launch`] starts stages, one or all, the one way every command does;
//! [`settings`] holds the flags every launch shares and [`connect`] makes
//! the connections they describe; [`home`] finds the runtime the bootstrap
//! installed; [`nats_server`] runs a private nats-server; [`probes`] serves
//! a stage's health checks and metrics.

pub mod connect;
pub mod home;
pub mod launch;
pub mod nats_server;
pub mod probes;
pub mod settings;

//! The `cairn` binary's integration tests, one binary (one link) for all of them: each
//! module drives real server processes; `common` starts them.

mod cli;
mod client_sdk;
mod cluster;
mod common;
mod compat;
mod console;
mod contract;
mod nacos_sdk;
mod tidy;

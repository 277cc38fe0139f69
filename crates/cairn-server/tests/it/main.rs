//! The node's integration tests, one binary (one link) for all of them: each module
//! drives a real node on port 0 through one surface or layer; `helpers` starts it.

mod api;
mod apollo;
mod audit;
mod connections;
mod gray;
mod grpc;
mod helpers;
mod limits;
mod nacos;
mod patterns;
mod permissions;
mod reviews;
mod schemas;
mod tls;
mod transfer;
mod webhooks;

//! Sessions through the server (issue 4): timeouts on a manual clock, devices with real
//! User-Agents, revocation on every node, password change, the per-user cap, Redis commands per
//! request and the admin counts. Nodes run in-process on loopback ports against real stores
//! (SQLite files, a real `redis-server`); time only moves when a test moves it.

#[macro_use]
mod harness;

mod account_admin;
mod admin;
mod cap;
mod devices;
mod headers;
mod password;
mod recovery;
mod redis_commands;
mod revocation;
mod timeouts;

//! Test support: packet and capture builders, and the fixture catalog.
#![allow(dead_code)]

pub mod files;
pub mod fixtures;
pub mod netns;
pub mod packets;
pub mod schema;

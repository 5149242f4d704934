//! Upstream mode: the S3 service stores every object sealed in another
//! S3-compatible store instead of the local data directory.

pub mod client;

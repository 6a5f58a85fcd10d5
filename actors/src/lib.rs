//! Aurora's ractor supervision tree: users, rate-limit buckets, the run manager with its run
//! actors, and the transcode pool with its ffmpeg workers.
//!
//! Nothing lives here yet: the foundation delivers the spine (store, relay, bus, read
//! models) these actors will consume from. See the "runs and transcodes" and "rate limits"
//! issues.
#![forbid(unsafe_code)]

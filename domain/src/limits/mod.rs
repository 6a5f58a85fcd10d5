//! Rate limiting as data and arithmetic: the policies (route classes, limits per tier, the
//! shipped presets) and the bucket each key is limited by (GCRA). The buckets live in
//! actors (`aurora_actors::limits`); the gateway decides requests with them.

pub mod gcra;
pub mod policy;

pub use gcra::{Bucket, Decision, Rate};
pub use policy::{Blocking, Class, KeyBy, Mode, Partition, Policies, PRESETS};

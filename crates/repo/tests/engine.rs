//! Integration tests of the storage engine on real storage: local disk, a
//! real S3-compatible server, and disk behind a fault-injecting OpenDAL layer.

mod engine {
    pub mod util;

    mod corruption;
    mod dedup;
    mod faults;
    mod hostile;
    mod locks;
    mod prune;
    mod roundtrip;
    mod s3;
}

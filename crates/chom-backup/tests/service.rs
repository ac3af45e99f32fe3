//! The service over real HTTP on loopback: API and authorization, jobs,
//! webhooks, the scheduler on a hand-moved clock.

#[path = "support/pg.rs"]
mod pg;

mod service {
    pub mod util;

    mod api;
    mod scheduler;
    mod webhooks;
}

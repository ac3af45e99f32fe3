//! The service over real HTTP on loopback: API and authorization, jobs,
//! webhooks, the scheduler on a hand-moved clock.

mod service {
    pub mod util;

    mod api;
    mod scheduler;
    mod webhooks;
}

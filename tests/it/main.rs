//! payrun's one integration-test binary. Each module drives the real binary or the real library
//! against the simulator on 127.0.0.1.

mod drift;
mod drop_in;
mod dwolla;
mod first_use;
mod ingest;
mod layering;
mod onboard;
mod payday;
mod postgres;
mod report;
mod send;
mod settings;
mod sim;
mod slow_clients;
mod support;
mod track;
mod unattended;
mod webhooks;

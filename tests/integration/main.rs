//! Integration tests against the local stack (moto server, the functions and the state machine interpreter on
//! 127.0.0.1, started by scripts/test.sh).
//! One test binary keeps link time low; each module covers one part of the system.

mod api;
mod backfills;
mod bad_requests;
mod bigquery;
mod capture;
mod converge;
mod faults;
mod firing;
mod live;
mod persons;
mod s3_export;
mod schedules;
mod state_machine;
mod template;

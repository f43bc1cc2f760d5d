//! Helpers of the integration tests, by concern: the local stack's clients ([`stack`]), a lake fixture
//! ([`lake`]), an independent reader of exported files ([`reader`]), the state machine runner ([`machine`]),
//! a fault-injecting proxy ([`fault_proxy`]), functions served apart ([`functions`]), the API's client ([`api`]) and the BigQuery stubs ([`bigquery`]).

pub mod api;
pub mod bigquery;
pub mod fault_proxy;
pub mod functions;
pub mod lake;
pub mod machine;
pub mod reader;
pub mod stack;

pub use api::{Api, ApiInstance};
pub use bigquery::{public_key_pem, rsa_key_pem};
pub use fault_proxy::{Fault, FaultProxy};
pub use functions::Functions;
pub use lake::Lake;
pub use machine::{execute_definition, execute_machine, execution_arn, wait_for_execution, Execution};
pub use reader::{assert_files_hold, read_exported, ExportedRow};
pub use stack::{
    fire_schedule, fire_schedules, function_logs, get_bytes, list_keys, local_stack, new_bucket, open_uploads,
    raw_export_item, s3, secret_box, settings,
};

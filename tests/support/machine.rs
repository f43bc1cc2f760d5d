//! The state machines of `statemachines/` on the local stack: executed by hand (localstack/run-execution.sh) for
//! tests that look at one execution's events, and the executions the stack runs by itself, awaited.

use std::process::Command;

use serde_json::Value;

/// What the local interpreter printed for one execution.
#[derive(Debug)]
pub struct Execution {
    pub status: String,
    pub output: Value,
    pub error: Option<String>,
    /// States retried, with their Map index.
    pub retries: Vec<Value>,
    /// Every event of the execution (each state's input and output), as JSON text.
    pub history: String,
}

/// Executes a state machine of `statemachines/` (`export`, `backfill`) on the local stack.
pub async fn execute_machine(machine: &str, name: &str, input: Value) -> Execution {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    execute_definition(&format!("{root}/statemachines/{machine}.asl.json"), name, input, None).await
}

/// Executes the definition at `path` (a state machine of `statemachines/`, or a test's variant of one), invoking
/// the stack's functions, or those a test serves on `lambda_port` ([`crate::Functions`]).
pub async fn execute_definition(path: &str, name: &str, input: Value, lambda_port: Option<u16>) -> Execution {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let name = name.to_string();
    let history = std::env::temp_dir().join(format!("{name}.history.json"));
    let history_path = history.clone();
    let path = path.to_string();
    let out = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(format!("{root}/localstack/run-execution.sh"));
        if let Some(port) = lambda_port {
            command.env("LAMBDA_PORT", port.to_string());
        }
        command
            .args(["--definition", &path, "--name", &name])
            .args(["--input", &input.to_string()])
            .arg("--history")
            .arg(&history_path)
            .output()
            .expect("run localstack/run-execution.sh")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no result from the interpreter; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let history_text = std::fs::read_to_string(&history).unwrap_or_default();
    let _ = std::fs::remove_file(&history);
    Execution {
        status: v["status"].as_str().unwrap_or_default().to_string(),
        output: v["output"].clone(),
        error: v["error"].as_str().map(str::to_string),
        retries: v["retries"].as_array().cloned().unwrap_or_default(),
        history: history_text,
    }
}

/// The ARN of a state machine's execution named `name` (`BATCH_EXPORT_STATE_MACHINE_ARN` or
/// `BATCH_EXPORT_BACKFILL_STATE_MACHINE_ARN`).
pub fn execution_arn(machine_variable: &str, name: &str) -> String {
    let machine = std::env::var(machine_variable).unwrap_or_else(|_| panic!("{machine_variable} is not set"));
    format!("{}:{name}", machine.replacen(":stateMachine:", ":execution:", 1))
}

/// Waits (at most 3 minutes) for an execution that the local stack runs by itself (the local Step Functions
/// endpoint, `AWS_ENDPOINT_URL_SFN`) to end; returns how it ended.
pub async fn wait_for_execution(arn: &str) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
    let sfn = aws_sdk_sfn::Client::new(&crate::stack::local_stack().await);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let described =
            sfn.describe_execution().execution_arn(arn).send().await.unwrap_or_else(|e| panic!("{arn}: {e:?}"));
        if described.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
            return described;
        }
        assert!(std::time::Instant::now() < deadline, "{arn} still runs after 3 minutes");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

//! A fault-injecting proxy in front of moto (tests/fault_proxy.py): what S3 and DynamoDB answer when they refuse,
//! throttle, deny or drop a request, injected by rules, with everything else forwarded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};

/// One rule of the proxy: which requests it matches and what they get (see tests/fault_proxy.py).
#[derive(Debug, Clone)]
pub struct Fault(Value);

impl Fault {
    fn new(fault: &str, method: &str, path_part: &str) -> Fault {
        Fault(json!({"fault": fault, "method": method, "path": path_part}))
    }

    /// `503 SlowDown` for `method` requests (`""`: any method) whose path (and query) contains `path_part`.
    pub fn slow_down(method: &str, path_part: &str) -> Fault {
        Fault::new("slowdown", method, path_part)
    }

    /// `403 AccessDenied`, as a bucket policy refusing the caller answers.
    pub fn deny(method: &str, path_part: &str) -> Fault {
        Fault::new("denied", method, path_part)
    }

    /// The connection reset half-way through the request body.
    pub fn reset(method: &str, path_part: &str) -> Fault {
        Fault::new("reset", method, path_part)
    }

    /// Forwarded after `seconds`.
    pub fn delay(method: &str, path_part: &str, seconds: f64) -> Fault {
        let mut fault = Fault::new("delay", method, path_part);
        fault.0["seconds"] = json!(seconds);
        fault
    }

    /// Forwarded, then answered `500` as if it failed: the request took effect and its answer was lost.
    pub fn lose_answer(method: &str, path_part: &str) -> Fault {
        Fault::new("lost", method, path_part)
    }

    /// DynamoDB's `ThrottlingException` for the operation `operation` (`UpdateItem`, ...).
    pub fn throttle(operation: &str) -> Fault {
        let mut fault = Fault::new("throttle", "POST", "");
        fault.0["target"] = json!(format!("DynamoDB_20120810.{operation}"));
        fault
    }

    /// Only requests whose `X-Amz-Target` header contains `part` (`AmazonSQS.SendMessageBatch`).
    pub fn when_target(mut self, part: &str) -> Fault {
        self.0["target"] = json!(part);
        self
    }

    /// Only requests whose body contains `part`.
    pub fn when_body_has(mut self, part: &str) -> Fault {
        self.0["body"] = json!(part);
        self
    }

    /// Injected into `count` matching requests (every one without this).
    pub fn times(mut self, count: u32) -> Fault {
        self.0["count"] = json!(count);
        self
    }

    /// The first `count` matching requests pass untouched.
    pub fn after(mut self, count: u32) -> Fault {
        self.0["skip"] = json!(count);
        self
    }
}

/// The proxy, listening on 127.0.0.1 in front of `AWS_ENDPOINT_URL`; stopped when dropped.
pub struct FaultProxy {
    child: Child,
    pub url: String,
}

impl FaultProxy {
    /// Answers the first `count` `method` requests whose path contains `path_part` with 503 SlowDown.
    pub fn start(method: &str, path_part: &str, count: u32) -> FaultProxy {
        FaultProxy::with(&[Fault::slow_down(method, path_part).times(count)])
    }

    /// Forwards the first `count` `method` requests whose path contains `path_part` after `seconds`.
    pub fn delaying(method: &str, path_part: &str, count: u32, seconds: f64) -> FaultProxy {
        FaultProxy::with(&[Fault::delay(method, path_part, seconds).times(count)])
    }

    /// A proxy injecting `faults` (the first rule matching a request decides it).
    pub fn with(faults: &[Fault]) -> FaultProxy {
        let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap();
        let port = upstream.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
        let rules: Vec<&Value> = faults.iter().map(|f| &f.0).collect();
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fault_proxy.py"))
            .arg(&port)
            .arg(serde_json::to_string(&rules).unwrap())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fault proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        FaultProxy { child, url: format!("http://127.0.0.1:{}", line.trim()) }
    }

    /// How many faults each rule injected so far.
    pub async fn injected(&self) -> Vec<u64> {
        self.control(None).await
    }

    /// Replaces the rules (`&[]`: the endpoint is healthy again).
    pub async fn set(&self, faults: &[Fault]) {
        self.control(Some(faults.iter().map(|f| f.0.clone()).collect())).await;
    }

    /// The proxy's control endpoint: reads (and with `rules`, first replaces) the rules' counts.
    async fn control(&self, rules: Option<Vec<Value>>) -> Vec<u64> {
        let url = format!("{}/__proxy__/faults", self.url);
        tokio::task::spawn_blocking(move || {
            let mut response = match rules {
                Some(rules) => ureq::post(&url).send(Value::Array(rules).to_string().as_bytes()),
                None => ureq::get(&url).call(),
            }
            .unwrap_or_else(|e| panic!("{url}: {e}"));
            let answer: Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
            answer["injected"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect()
        })
        .await
        .unwrap()
    }

    /// Waits (at most a minute) until rule `rule` injected at least `count` faults.
    pub async fn wait_for(&self, rule: usize, count: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while self.injected().await[rule] < count {
            assert!(std::time::Instant::now() < deadline, "rule {rule} injected fewer than {count} faults in a minute");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

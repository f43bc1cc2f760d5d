//! A fault-injecting proxy in front of moto (tests/fault_proxy.py).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A fault-injecting proxy in front of moto (tests/fault_proxy.py): S3 in most tests, EventBridge Scheduler in
/// one; stopped when dropped.
pub struct FaultProxy {
    child: Child,
    pub url: String,
}

impl FaultProxy {
    /// Answers the first `count` `method` requests whose path contains `path_part` with 503 SlowDown.
    pub fn start(method: &str, path_part: &str, count: u32) -> FaultProxy {
        FaultProxy::spawn(&[method, path_part, &count.to_string()])
    }

    /// Forwards the first `count` `method` requests whose path contains `path_part` after `seconds`.
    pub fn delaying(method: &str, path_part: &str, count: u32, seconds: f64) -> FaultProxy {
        FaultProxy::spawn(&[method, path_part, &count.to_string(), &seconds.to_string()])
    }

    fn spawn(args: &[&str]) -> FaultProxy {
        let upstream = std::env::var("AWS_ENDPOINT_URL").unwrap();
        let port = upstream.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fault_proxy.py"))
            .arg(&port)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the fault proxy");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        FaultProxy { child, url: format!("http://127.0.0.1:{}", line.trim()) }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

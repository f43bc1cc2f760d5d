//! Functions of the workspace served apart from the stack's: a `cargo lambda watch` of their own on a free port
//! (cargo lambda serves only the project's binary names) and one process per function, with settings a test
//! changes. A test can kill one of them (`kill -9`, as a crash would) and start it again without touching the
//! stack's functions that other tests use. Everything is stopped when dropped; the functions log to
//! `.local/apart-{port}-{function}.log`.

use std::process::{Child, Command, Stdio};

pub struct Functions {
    watch: Child,
    processes: Vec<(String, Child)>,
    env: Vec<(String, String)>,
    port: u16,
}

impl Functions {
    pub fn start(names: &[&str], env: &[(&str, String)]) -> Functions {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let watch = Command::new(format!("{root}/.local/venv/bin/cargo-lambda"))
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes", "-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .current_dir(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda (installed by scripts/test.sh)");
        let env = env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let mut functions = Functions { watch, processes: Vec::new(), env, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "cargo lambda watch did not listen on {port}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        for name in names {
            functions.spawn(name);
        }
        functions
    }

    /// The Lambda endpoint serving them (for `AWS_ENDPOINT_URL_LAMBDA`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts one more process of the function `name`.
    pub fn spawn(&mut self, name: &str) {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{root}/.local/apart-{}-{name}.log", self.port))
            .expect("a log file under .local");
        let program = binaries().join(name);
        let child = Command::new(&program)
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{}/.rt/{name}", self.port))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{} (cargo build --workspace --bins): {e}", program.display()));
        self.processes.push((name.to_string(), child));
    }

    /// Kills every process of the function `name` with SIGKILL, as a crash, an out-of-memory kill or a Lambda
    /// timeout would end it: no destructor runs, nothing is cleaned up.
    pub fn kill(&mut self, name: &str) {
        for (_, child) in self.processes.iter_mut().filter(|(n, _)| n == name) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.processes.retain(|(n, _)| n != name);
    }
}

impl Drop for Functions {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.watch.kill();
        let _ = self.watch.wait();
    }
}

/// Where the workspace's binaries are: beside this test executable's folder (`target/debug/deps/..`), whatever
/// the target directory.
fn binaries() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    exe.parent().and_then(|deps| deps.parent()).expect("target/debug").to_path_buf()
}

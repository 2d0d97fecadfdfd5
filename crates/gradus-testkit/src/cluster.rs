//! A Ballista cluster on loopback ports for tests and benchmarks: one `gradus-scheduler`
//! and some `gradus-executor`s, killed when dropped. Their logs go
//! to `scheduler.log` and `executor-N.log` in the work folder.

#![allow(clippy::unwrap_used)] // a test helper: a cluster that cannot start fails the test

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `addr` (panics after 30 s).
pub fn wait_for_port(addr: SocketAddr) {
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "nothing listens on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log(work: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(work.join(format!("{name}.log"))).unwrap()
}

/// The running processes: the scheduler first, then the executors.
#[derive(Debug)]
pub struct LocalCluster {
    scheduler: SocketAddr,
    procs: Vec<Child>,
}

impl LocalCluster {
    /// Starts the scheduler binary and `executors` executor binaries of `slots` task
    /// slots each, each executor with its own work folder under `work`.
    pub fn start(
        scheduler_bin: &str,
        executor_bin: &str,
        executors: usize,
        slots: usize,
        work: &Path,
    ) -> Self {
        std::fs::create_dir_all(work).unwrap();
        let scheduler: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut cluster = Self {
            scheduler,
            procs: Vec::new(),
        };
        cluster.procs.push(
            Command::new(scheduler_bin)
                .args(["--bind", &scheduler.to_string()])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log(work, "scheduler"))
                .spawn()
                .unwrap(),
        );
        wait_for_port(scheduler);
        for i in 0..executors {
            let dir = work.join(format!("executor-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let (port, grpc) = (free_port().to_string(), free_port().to_string());
            cluster.procs.push(
                Command::new(executor_bin)
                    .args(["--scheduler", &scheduler.to_string()])
                    .args(["--port", &port, "--grpc-port", &grpc])
                    .args(["--slots", &slots.to_string()])
                    .arg("--work-dir")
                    .arg(&dir)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(log(work, &format!("executor-{i}")))
                    .spawn()
                    .unwrap(),
            );
            wait_for_port(format!("127.0.0.1:{grpc}").parse().unwrap());
        }
        cluster
    }

    /// The address clients use.
    pub fn url(&self) -> String {
        format!("df://{}", self.scheduler)
    }

    /// Kills executor `i` with SIGKILL: no goodbye to the scheduler.
    pub fn kill_executor(&mut self, i: usize) {
        let child = &mut self.procs[1 + i];
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in &mut self.procs {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

//! What machine a benchmark ran on: every speed figure is printed and saved with it,
//! since the same commit runs at different speeds on machines sold as the same kind.

use std::fmt::Write as _;
use std::path::Path;

/// The CPU flags that decide which kernels and microkernels run.
const FLAGS: [&str; 8] = [
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
];

/// The CPU model, the flags of [`FLAGS`] it has, the caches as this process sees them
/// (what gemm sizes its blocks from), the threads it may use and the commit.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu: String,
    pub flags: Vec<String>,
    /// `L1d 48K (1 cpu)`, `L3 491520K (2 cpus)`, ...
    pub caches: Vec<String>,
    pub threads: usize,
    pub commit: String,
}

impl Machine {
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let have: Vec<String> = field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Self {
            cpu: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            flags: FLAGS
                .iter()
                .filter(|f| have.iter().any(|h| h == *f))
                .map(|f| f.to_string())
                .collect(),
            caches: caches(Path::new("/sys/devices/system/cpu/cpu0/cache")),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            commit: commit(),
        }
    }

    /// One line for a benchmark's output.
    pub fn line(&self) -> String {
        let mut s = format!("machine: {}, {} threads", self.cpu, self.threads);
        let _ = write!(s, "; {}", self.flags.join(" "));
        if !self.caches.is_empty() {
            let _ = write!(s, "; {}", self.caches.join(", "));
        }
        let _ = write!(s, "; gradus {}", self.commit);
        s
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "cpu": self.cpu,
            "flags": self.flags,
            "caches": self.caches,
            "threads": self.threads,
            "gradus_commit": self.commit,
        })
    }
}

/// `L<level><d|i|> <size> (<n> cpus)` for each cache of cpu0, from sysfs.
fn caches(dir: &Path) -> Vec<String> {
    let read = |p: &Path, f: &str| {
        std::fs::read_to_string(p.join(f))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for i in 0..8 {
        let index = dir.join(format!("index{i}"));
        if !index.is_dir() {
            break;
        }
        let kind = match read(&index, "type").as_str() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        let shared = read(&index, "shared_cpu_list");
        out.push(format!(
            "L{}{kind} {} ({} cpus)",
            read(&index, "level"),
            read(&index, "size"),
            cpu_count(&shared)
        ));
    }
    out
}

/// The number of CPUs in a sysfs list such as `0-1,4`.
fn cpu_count(list: &str) -> usize {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 1,
            },
            None => 1,
        })
        .sum()
}

/// The commit the benchmark was built at (`build.rs`), not the checkout it runs in.
fn commit() -> String {
    env!("GRADUS_BUILD_COMMIT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_the_one_built_at() {
        let head = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(crate::workspace_root())
            .output()
            .expect("git runs in the checkout");
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        assert_eq!(commit(), head);
    }

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(cpu_count("0-1"), 2);
        assert_eq!(cpu_count("0"), 1);
        assert_eq!(cpu_count("0-3,8,10-11"), 7);
        assert_eq!(cpu_count(""), 0);
    }

    #[test]
    fn caches_are_read_from_a_sysfs_layout() {
        let dir = tempfile::tempdir().unwrap();
        for (i, (level, kind, size, shared)) in [
            ("1", "Data", "48K", "0"),
            ("3", "Unified", "491520K", "0-1"),
        ]
        .into_iter()
        .enumerate()
        {
            let idx = dir.path().join(format!("index{i}"));
            std::fs::create_dir_all(&idx).unwrap();
            for (f, v) in [
                ("level", level),
                ("type", kind),
                ("size", size),
                ("shared_cpu_list", shared),
            ] {
                std::fs::write(idx.join(f), format!("{v}\n")).unwrap();
            }
        }
        assert_eq!(
            caches(dir.path()),
            vec!["L1d 48K (1 cpus)", "L3 491520K (2 cpus)"]
        );
    }
}

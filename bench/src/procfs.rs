//! What the bench reads from /proc: a process's resident memory and the machine's load.
//! Linux only, as the project machine is.

/// Resident set size now (`VmRSS`) and its peak (`VmHWM`) of process `pid`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rss {
    pub now_kib: u64,
    pub peak_kib: u64,
}

impl Rss {
    pub fn of(pid: u32) -> std::io::Result<Rss> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> std::io::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("no {name} in /proc/{pid}/status")))
        };
        Ok(Rss {
            now_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    pub fn summary(&self) -> String {
        format!(
            "RSS {:.1} MiB (peak {:.1} MiB)",
            self.now_kib as f64 / 1024.0,
            self.peak_kib as f64 / 1024.0
        )
    }
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_own_process_has_a_resident_set() {
        let rss = Rss::of(std::process::id()).expect("own status");
        assert!(rss.now_kib > 0 && rss.peak_kib >= rss.now_kib, "{rss:?}");
        assert_eq!(load_average().split(' ').count(), 3);
    }
}

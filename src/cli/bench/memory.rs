//! Process memory figures from `/proc/self/status` (Linux), and evicting bundle files from the page
//! cache for a cold-load measurement.

use std::path::Path;

use serde::Serialize;

/// Resident-set figures of this process, in bytes (`None` where /proc is unavailable).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Rss {
    /// VmHWM: the peak resident set so far.
    pub peak_bytes: Option<u64>,
    /// VmRSS now.
    pub current_bytes: Option<u64>,
    /// RssAnon: heap, ONNX Runtime arenas, prepacked weights.
    pub anon_bytes: Option<u64>,
    /// RssFile: resident pages of mapped files (external data used in place, the embedding table).
    pub file_bytes: Option<u64>,
}

/// Reads `/proc/self/status`.
pub fn rss() -> Rss {
    let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
        return Rss::default();
    };
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
    };
    Rss {
        peak_bytes: field("VmHWM:"),
        current_bytes: field("VmRSS:"),
        anon_bytes: field("RssAnon:"),
        file_bytes: field("RssFile:"),
    }
}

/// Resident bytes of each mapped file of this process (from `/proc/self/smaps`), largest first: shows
/// which weights are used in place from their files and which were copied (those show up as anon).
pub fn resident_files() -> Vec<(String, u64)> {
    let Ok(text) = std::fs::read_to_string("/proc/self/smaps") else {
        return Vec::new();
    };
    let mut by_file: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        // A mapping header: "start-end perms offset dev inode [path]"; its first field has a '-'.
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            current = fields
                .nth(4)
                .filter(|p| p.starts_with('/'))
                .map(str::to_string);
        } else if let (Some(path), Some(rest)) = (&current, line.strip_prefix("Rss:")) {
            let kib: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
            *by_file.entry(path.clone()).or_insert(0) += kib * 1024;
        }
    }
    let mut v: Vec<(String, u64)> = by_file.into_iter().filter(|(_, b)| *b > 0).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}

/// Asks the kernel to drop `path`'s clean pages from the page cache (`POSIX_FADV_DONTNEED`), so the
/// next load reads it from disk. Pages mapped by a running process stay. Returns false when the
/// file cannot be opened or the advice fails (the load is then not cold, and the report says so).
pub fn evict_from_page_cache(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    // SAFETY: a plain syscall on a file descriptor we own for the duration of the call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    rc == 0
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of the ONNX Runtime timing shim (benches/ortshim), so
/// token timestamps and run intervals can be joined.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is its failure message
mod tests {
    use super::*;

    #[test]
    fn proc_status_is_read_and_consistent() {
        let r = rss();
        let (peak, cur) = (r.peak_bytes.unwrap(), r.current_bytes.unwrap());
        assert!(cur > 0 && peak >= cur, "peak {peak} current {cur}");
        // The test binary itself is a mapped, resident file.
        assert!(!resident_files().is_empty());
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
    }
}

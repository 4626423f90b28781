//! Resident memory of a process and its children, as the kernel counts it
//! (the ingest tests and the archive benchmark read it).

/// The high-water mark of resident memory of `pid` and of its children (an
/// extraction worker), in KiB: `VmHWM` from /proc, polled while it runs.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let hwm = |pid: &str| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
    };
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    std::iter::once(pid.to_string())
        .chain(children.split_whitespace().map(str::to_string))
        .filter_map(|p| hwm(&p))
        .sum()
}

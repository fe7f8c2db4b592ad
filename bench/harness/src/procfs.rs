//! What the benchmark reads from `/proc` (and the one rlimit it raises).

use std::io;

/// A process's CPU time so far: utime + stime from `/proc/PID/stat`, in seconds.
///
/// The kernel counts both in clock ticks (usually 100 per second); over a window of
/// seconds on a busy core that is well under 1 % of resolution. It covers every thread
/// of the process (actix's acceptor and worker threads included).
pub fn cpu_secs(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: fields after the
    // last ')' start at field 3 (state), so utime (14) and stime (15) are the 12th and
    // 13th of them.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| bad_data("no ')' in /proc/PID/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad_data("short /proc/PID/stat"))
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / clock_ticks_per_sec())
}

/// `sysconf(_SC_CLK_TCK)`: the unit of utime and stime.
fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// A process's resident set size (`VmRSS` in `/proc/PID/status`), in bytes.
pub fn vm_rss(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or_else(|| bad_data("no VmRSS in /proc/PID/status"))?;
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad_data("unreadable VmRSS"))?;
    Ok(kib * 1024)
}

/// This process's own CPU time (user + system, every thread), in seconds.
pub fn own_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises the soft limit on open files to the hard limit (children inherit it): 10,000
/// idle connections need 10,000 descriptors at each end. Returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: plain get/setrlimit on a struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Whether some socket listens on 127.0.0.1:`port` (or 0.0.0.0:`port`), from
/// `/proc/net/tcp`. The suite waits on this rather than connecting, so a server never
/// sees a probe connection.
pub fn is_listening(port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table.lines().skip(1).any(|line| {
        let mut f = line.split_whitespace();
        let (local, state) = (f.nth(1), f.nth(1)); // fields 1 (local) and 3 (state)
        state == Some("0A") && local.is_some_and(|l| wanted.iter().any(|w| w == l))
    })
}

fn bad_data(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

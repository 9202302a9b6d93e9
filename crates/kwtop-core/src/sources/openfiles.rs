//! Which processes have a file open for writing, or listen on a TCP port: the `/proc/PID/fd` links,
//! `/proc/PID/fdinfo/N` flags and `/proc/net/tcp{,6}` of a procfs root (or a fixture tree). The
//! live work meter asks, now and then, whose energy a training log's or an inference server's units
//! belong to.
//!
//! A scan reads every process's open files: it is for a lookup every several seconds, never per
//! sample. Another user's `/proc/PID/fd` is unreadable without privileges: such processes are
//! counted ([`Holders::unreadable`]) so the caller can say why none was found. Never a panic.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The processes found, and how many could not be looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Holders {
    /// Sorted, each once.
    pub pids: Vec<u32>,
    /// Processes whose open files could not be read (another user's, without privileges).
    pub unreadable: usize,
}

/// The processes that have `file` open for writing (`O_WRONLY` or `O_RDWR`), matched by the path
/// their descriptor links to (the file's canonical path). None when `file` does not exist.
pub fn writers_of(proc_root: &Path, file: &Path) -> Holders {
    let Ok(target) = std::fs::canonicalize(file) else {
        return Holders::default();
    };
    let want = target.as_os_str().as_bytes();
    scan(proc_root, |pid_dir, fd, link| {
        link == want
            && std::fs::read_to_string(pid_dir.join("fdinfo").join(fd))
                .is_ok_and(|info| fdinfo_writable(&info))
    })
}

/// The processes holding a TCP socket that listens on `port` (IPv4 or IPv6, any address).
pub fn listeners_on(proc_root: &Path, port: u16) -> Holders {
    let mut inodes: HashSet<u64> = HashSet::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc_root.join(table)) {
            inodes.extend(listening_inodes(&text, port));
        }
    }
    if inodes.is_empty() {
        return Holders::default();
    }
    scan(proc_root, |_, _, link| {
        socket_inode(link).is_some_and(|i| inodes.contains(&i))
    })
}

/// `socket:[12345]` → 12345.
pub fn socket_inode(link: &[u8]) -> Option<u64> {
    let inner = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// The inodes of the sockets in a `/proc/net/tcp` or `tcp6` table that listen (state `0A`) on
/// `port`. Lines that are not in the format are skipped.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let (_, hex_port) = local.rsplit_once(':')?;
            let p = u16::from_str_radix(hex_port, 16).ok()?;
            let listening = *f.get(3)? == "0A";
            let inode: u64 = f.get(9)?.parse().ok()?;
            (listening && p == port && inode != 0).then_some(inode)
        })
        .collect()
}

/// Whether a `/proc/PID/fdinfo/N` text says the descriptor was opened for writing: its `flags:`
/// (octal) have access mode `O_WRONLY` (1) or `O_RDWR` (2).
pub fn fdinfo_writable(info: &str) -> bool {
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        .is_some_and(|flags| matches!(flags & 0o3, 1 | 2))
}

/// Every process under `proc_root` with a descriptor for which `want(pid dir, fd name, link)`.
fn scan(proc_root: &Path, mut want: impl FnMut(&Path, &OsStr, &[u8]) -> bool) -> Holders {
    let mut out = Holders::default();
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let pid_dir = entry.path();
        let fds = match std::fs::read_dir(pid_dir.join("fd")) {
            Ok(fds) => fds,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                out.unreadable += 1;
                continue;
            }
            // Exited while scanning.
            Err(_) => continue,
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if want(&pid_dir, &fd.file_name(), link.as_os_str().as_bytes()) {
                out.pids.push(pid);
                break;
            }
        }
    }
    out.pids.sort_unstable();
    out.pids.dedup();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::symlink;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F40 0100007F:9C4E 01 00000000:00000000 00:00000000 00000000  1000        0 31338 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0
   3: garbage
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4444 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn listening_sockets_by_port_ipv4_and_ipv6() {
        assert_eq!(
            listening_inodes(TCP, 8000),
            [31337],
            "the connected socket is not listening"
        );
        assert_eq!(listening_inodes(TCP, 22), [1234]);
        assert_eq!(listening_inodes(TCP6, 8000), [4444]);
        assert!(listening_inodes(TCP, 9).is_empty());
        assert_eq!(socket_inode(b"socket:[31337]"), Some(31337));
        assert_eq!(socket_inode(b"pipe:[31337]"), None);
        assert_eq!(socket_inode(b"/tmp/socket:[1]"), None);
    }

    #[test]
    fn fdinfo_access_modes() {
        assert!(
            fdinfo_writable("pos:\t0\nflags:\t0102001\nmnt_id:\t25\n"),
            "O_WRONLY|O_APPEND"
        );
        assert!(fdinfo_writable("pos:\t0\nflags:\t02\n"), "O_RDWR");
        assert!(!fdinfo_writable("pos:\t0\nflags:\t0100000\n"), "O_RDONLY");
        assert!(!fdinfo_writable("pos:\t0\n"));
    }

    /// A procfs fixture: pid 100 appends to the log, 101 reads it, 102 holds the listening socket
    /// of port 8000 (IPv4), 103 the IPv6 one, 104 nothing of interest.
    #[test]
    fn writers_and_listeners_in_a_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proc");
        let log = dir.path().join("train.log");
        std::fs::write(&log, "step 1\n").unwrap();
        let fd = |pid: u32, n: u32, target: &Path, flags: &str| {
            let p = root.join(pid.to_string());
            std::fs::create_dir_all(p.join("fd")).unwrap();
            std::fs::create_dir_all(p.join("fdinfo")).unwrap();
            symlink(target, p.join("fd").join(n.to_string())).unwrap();
            std::fs::write(
                p.join("fdinfo").join(n.to_string()),
                format!("pos:\t0\nflags:\t{flags}\n"),
            )
            .unwrap();
        };
        fd(100, 1, &log, "0102001");
        fd(100, 2, Path::new("/dev/null"), "0100002");
        fd(101, 3, &log, "0100000");
        fd(102, 5, Path::new("socket:[31337]"), "02");
        fd(103, 7, Path::new("socket:[4444]"), "02");
        fd(104, 0, Path::new("socket:[1234]"), "02");
        std::fs::create_dir_all(root.join("net")).unwrap();
        std::fs::write(root.join("net/tcp"), TCP).unwrap();
        std::fs::write(root.join("net/tcp6"), TCP6).unwrap();
        // Through a relative, non-canonical spelling of the path.
        let spelled = dir.path().join(".").join("train.log");
        assert_eq!(writers_of(&root, &spelled).pids, [100]);
        assert_eq!(listeners_on(&root, 8000).pids, [102, 103]);
        assert_eq!(listeners_on(&root, 22).pids, [104]);
        assert!(listeners_on(&root, 9).pids.is_empty());
        assert_eq!(
            writers_of(&root, &dir.path().join("missing.log")),
            Holders::default()
        );
    }

    #[test]
    fn this_process_is_found_in_the_real_proc() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("w.log");
        let _w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let me = std::process::id();
        assert!(writers_of(Path::new("/proc"), &log).pids.contains(&me));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listeners_on(Path::new("/proc"), port).pids.contains(&me));
    }
}

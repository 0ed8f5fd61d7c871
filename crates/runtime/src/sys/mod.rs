//! Every `unsafe` block of the runtime, each with why it is sound. Only
//! what rustix has no wrapper for: clone with namespace flags, signal masks
//! and signalfd, seccomp, TIOCSCTTY, kill/wait with raw numbers.

use std::io;

mod spawn;
pub use spawn::{spawn, Spawn};

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// `clone(flags | SIGCHLD)` with no new stack: fork semantics plus new
/// namespaces. Returns `Some(pid)` in the parent and `None` in the child.
pub fn clone_fork(flags: libc::c_int) -> io::Result<Option<libc::pid_t>> {
    // SAFETY: with a NULL stack the raw clone syscall behaves like fork(2):
    // the child gets a copy of the address space. The caller is
    // single-threaded (berth spawns no threads before running a container),
    // so no lock can be held by a thread that does not exist in the child.
    let r = unsafe {
        libc::syscall(libc::SYS_clone, (flags | libc::SIGCHLD) as libc::c_ulong, 0usize, 0usize, 0usize, 0usize)
    };
    let pid = check(r)?;
    Ok(if pid == 0 { None } else { Some(pid as libc::pid_t) })
}

/// Runs `f` in a process of its own that the caller does not wait for: a
/// grandchild (the child in between is reaped here, so none is left a
/// zombie), with every descriptor closed first (no lock, pipe or stdio of
/// berth's held past its exit). Where forking fails, `f` runs here.
pub fn in_background(f: impl FnOnce()) {
    match clone_fork(0) {
        Ok(Some(child)) => {
            let _ = waitpid(child, false);
        }
        Ok(None) => {
            if let Ok(None) = clone_fork(0) {
                let _ = close_range(0, u32::MAX);
                f();
            }
            exit_now(0)
        }
        Err(_) => f(),
    }
}

/// [`clone_fork`] into the cgroup2 directory `cgroup` (clone3 with
/// `CLONE_INTO_CGROUP`): the child starts in it. `Ok(None)` in the child.
pub fn clone_into_cgroup(flags: libc::c_int, cgroup: &std::os::fd::OwnedFd) -> io::Result<Option<libc::pid_t>> {
    use std::os::fd::AsRawFd;
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let args = CloneArgs {
        flags: flags as u32 as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: as for `clone_fork`: with no stack, clone3 behaves like
    // fork(2) (the child runs on a copy of the parent's stack), and the
    // caller is single-threaded. `args` is a clone_args of the size
    // passed, read by the kernel during the call only.
    let r = unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) };
    let pid = check(r)?;
    Ok(if pid == 0 { None } else { Some(pid as libc::pid_t) })
}

/// The signals berth forwards or watches.
pub const FORWARDED: &[libc::c_int] = &[
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully
    // before sigaddset touches it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks `signals` and returns a signalfd that reads them.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<std::os::fd::OwnedFd> {
    let set = sigset(signals);
    // SAFETY: `set` is a valid, initialised sigset; NULL old-set is allowed.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } as libc::c_long)?;
    // SAFETY: -1 asks for a new fd; `set` is valid for the call.
    let fd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) } as libc::c_long)?;
    // SAFETY: signalfd returned a fresh fd that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
}

/// Unblocks every signal (for a child about to exec).
pub fn unblock_all() {
    // SAFETY: an empty, initialised set; SIG_SETMASK with it cannot fail.
    unsafe {
        let set = sigset(&[]);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// Ignores the terminal and job-control signals (SIGINT, SIGQUIT, SIGHUP,
/// SIGTSTP, SIGTTIN, SIGTTOU): for a helper process that must outlive the
/// shell that started berth, such as a detached machine's console logger.
pub fn ignore_job_control_signals() {
    for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP, libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        // SAFETY: SIG_IGN is a valid disposition for each of these
        // catchable signals; no handler code is installed.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
}

/// Reads one signal number from a signalfd.
pub fn read_signal(fd: &std::os::fd::OwnedFd) -> io::Result<libc::c_int> {
    use std::os::fd::AsRawFd;
    // SAFETY: signalfd_siginfo is plain data; we pass its exact size and
    // only read it after the kernel filled it.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let n = libc::read(
            fd.as_raw_fd(),
            &mut info as *mut _ as *mut libc::c_void,
            std::mem::size_of::<libc::signalfd_siginfo>(),
        );
        check(n as libc::c_long)?;
        Ok(info.ssi_signo as libc::c_int)
    }
}

pub fn kill(pid: libc::pid_t, sig: libc::c_int) -> io::Result<()> {
    // SAFETY: kill takes plain integers.
    check(unsafe { libc::kill(pid, sig) } as libc::c_long).map(|_| ())
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128 + the signal.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// `waitpid(pid, flags)`: `Ok(None)` when WNOHANG found nothing.
pub fn waitpid(pid: libc::pid_t, nohang: bool) -> io::Result<Option<(libc::pid_t, Exit)>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer for the call.
        let r = unsafe { libc::waitpid(pid, &mut status, if nohang { libc::WNOHANG } else { 0 }) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Ok(None);
        }
        let exit = if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            continue;
        };
        return Ok(Some((r, exit)));
    }
}

/// Installs a classic BPF seccomp filter (no_new_privs must be set or the
/// caller hold CAP_SYS_ADMIN).
pub fn install_seccomp(filter: &[crate::seccomp::SockFilter]) -> io::Result<()> {
    let prog = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr() as *mut libc::sock_filter };
    // SAFETY: SockFilter is #[repr(C)] with sock_filter's layout; `prog`
    // points at an array that outlives the call, which copies it.
    check(unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const libc::sock_fprog) }
        as libc::c_long)
    .map(|_| ())
}

/// Makes `fd` (a terminal) the calling session leader's controlling tty.
pub fn set_controlling_tty(fd: i32) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument, no pointers.
    check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } as libc::c_long).map(|_| ())
}

/// Exits now, without running destructors or flushing stdio buffers that
/// belong to the parent's copy of the process.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Sets `lo` up in the current network namespace (SIOCSIFFLAGS).
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: a plain datagram socket; ifreq is plain data we zero, name
    // with a NUL-terminated "lo", and pass to ioctls that expect it.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
        }
        let e = io::Error::last_os_error();
        libc::close(s);
        if r < 0 {
            return Err(e);
        }
    }
    Ok(())
}

/// Moves the calling process into a new cgroup namespace.
pub fn unshare_cgroup() -> io::Result<()> {
    // SAFETY: CLONE_NEWCGROUP changes no memory or file-descriptor state of
    // the process; the unsafety rustix guards against (sharing fd tables
    // and the like) does not arise for this flag.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }?;
    Ok(())
}

/// Moves the calling thread (only it: the network namespace is a
/// per-thread attribute) into a new network namespace.
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: CLONE_NEWNET only changes which network namespace this
    // thread's future sockets and interface lookups use; no memory, fd
    // table or filesystem state is unshared, which is what rustix's
    // `unshare_unsafe` warns about (CLONE_FILES, CLONE_FS and the like).
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }?;
    Ok(())
}

/// Moves the calling process into a new mount namespace with private
/// propagation: what it mounts afterwards vanishes when it exits.
pub fn private_mount_namespace() -> io::Result<()> {
    // SAFETY: CLONE_NEWNS only changes which mount table this process
    // sees; berth calls it before starting any thread that could care.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )?;
    Ok(())
}

/// execve(2); returns only on failure.
pub fn execve(argv: &[std::ffi::CString], env: &[std::ffi::CString]) -> io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = env.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point at CStrings that
    // outlive the call; execve only returns on failure.
    unsafe { libc::execve(a[0], a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// Wraps a standard fd number (0-2) as an OwnedFd so it can be a dup2
/// target; the caller forgets it instead of closing it.
pub fn owned_fd(fd: i32) -> std::os::fd::OwnedFd {
    // SAFETY: fds 0-2 are open in the child (inherited stdio); the caller
    // never lets this OwnedFd drop, so nothing closes them.
    unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }
}

/// SIGRTMIN+n.
pub fn sigrtmin_plus(n: i32) -> libc::c_int {
    libc::SIGRTMIN() + n
}

/// The signal that shuts the init `pid` down cleanly: SIGRTMIN+3 for
/// systemd (its "halt" for containers, what systemd-nspawn sends), SIGUSR2
/// for busybox init (its poweroff), SIGTERM for anything else.
pub fn poweroff_signal(pid: i32) -> libc::c_int {
    let exe =
        std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    if exe.ends_with("/systemd") {
        return sigrtmin_plus(3);
    }
    // busybox may be installed under any name (/sbin/init as a copy): look
    // for its banner in the binary itself.
    let is_busybox = exe.ends_with("/busybox")
        || std::fs::read(format!("/proc/{pid}/exe")).map(|b| b.windows(7).any(|w| w == b"BusyBox")).unwrap_or(false);
    if is_busybox {
        libc::SIGUSR2
    } else {
        libc::SIGTERM
    }
}

/// A process's start time in clock ticks since boot (/proc/PID/stat field
/// 22): with the pid, it names one process even after pids are reused.
pub fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Closes every descriptor except `keep` (and 0-2): what a forked child
/// inherited by accident, the caller's and berth's own, never reaches the
/// container (the runc CVE-2024-21626 class).
pub fn close_fds_except(keep: &[i32]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep.iter().filter(|&&f| f > 2).map(|&f| f as u32).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > first {
            close_range(first, k - 1)?;
        }
        first = k.saturating_add(1);
    }
    Ok(())
}

/// Descriptors 3..3+`n` handed on deliberately (socket activation): open
/// across exec, and everything above them close-on-exec.
pub fn pass_fds(n: u32) -> io::Result<()> {
    for fd in 3..3 + n {
        // SAFETY: F_SETFD only changes a flag of an open descriptor; on one
        // that is not open it fails with EBADF and touches nothing.
        check(unsafe { libc::fcntl(fd as i32, libc::F_SETFD, 0) } as libc::c_long)?;
    }
    cloexec_from(3 + n)
}

/// Closes descriptors `first..=last`; the caller owns none of them as
/// Rust values (a forked child's inherited ones, or fds it handed on).
pub fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: close_range takes plain integers and only closes fds; by the
    // contract above nothing in this process will use or close them again.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(|_| ())
}

/// Marks every descriptor from `first` up close-on-exec, so an exec drops
/// them while the code that runs until then keeps working (std's own
/// exec-error pipe included).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    // SAFETY: CLOSE_RANGE_CLOEXEC only sets a flag on open descriptors.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) }).map(|_| ())
}

/// The bounds of this process's argv and environment strings
/// (`/proc/self/stat` fields 48-51).
fn arg_env_bounds() -> Option<[usize; 4]> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    // Field 3 (state) is rest's first; fields 48-51 are rest's 45-48.
    let f: Vec<usize> = rest.split_whitespace().skip(45).take(4).filter_map(|x| x.parse().ok()).collect();
    (f.len() == 4).then(|| [f[0], f[1], f[2], f[3]])
}

/// Overwrites this process's argv with `name` and its environment with
/// zeros, so `/proc/PID/cmdline` and `/proc/PID/environ` show nothing of
/// the host berth was started from (paths, tokens). Moving the areas
/// (PR_SET_MM) needs CAP_SYS_RESOURCE, which a host may lack; writing
/// them in place needs nothing.
pub fn scrub_cmdline_and_environ(name: &[u8]) {
    let Some([arg_start, arg_end, env_start, env_end]) = arg_env_bounds() else { return };
    if arg_end <= arg_start || env_end < env_start || name.len() + 1 > arg_end - arg_start {
        return;
    }
    // SAFETY: the kernel reports these ranges as this process's argv and
    // environment strings, which live in its own writable stack mapping.
    // Nothing in this process holds a Rust reference into them (std copies
    // argv and the environment when asked), and it is single-threaded, so
    // overwriting the bytes cannot invalidate anything in use.
    unsafe {
        std::ptr::write_bytes(arg_start as *mut u8, 0, arg_end - arg_start);
        std::ptr::copy_nonoverlapping(name.as_ptr(), arg_start as *mut u8, name.len());
        std::ptr::write_bytes(env_start as *mut u8, 0, env_end - env_start);
    }
}

/// The kernel's `struct mount_attr`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2) on `path` relative to `dirfd`.
fn mount_setattr(dirfd: libc::c_int, path: &std::ffi::CStr, flags: libc::c_int, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and `attr` a mount_attr of the size
    // passed; the kernel only reads both during the call, and `dirfd` is
    // AT_FDCWD or a descriptor the caller keeps open for its duration.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags as libc::c_uint,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(|_| ())
}

/// `mount_setattr(path)` setting `set` (MOUNT_ATTR_*) on the mount at
/// `path`, and on every mount below it when `recursive`.
pub fn mount_setattr_path(path: &std::path::Path, set: u64, recursive: bool) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput)?;
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    mount_setattr(libc::AT_FDCWD, &c, if recursive { libc::AT_RECURSIVE } else { 0 }, &attr)
}

/// MOUNT_ATTR_RDONLY, NOSUID, NODEV and NOEXEC for the `mount_setattr` calls.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// setns(2) into several namespaces of the process `pidfd` refers to at
/// once (a pidfd names one process, so a reused pid cannot redirect it).
pub fn setns_pidfd(pidfd: &std::os::fd::OwnedFd, nstypes: libc::c_int) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: setns takes an fd and flags; it touches no memory of ours.
    check(unsafe { libc::setns(pidfd.as_raw_fd(), nstypes) } as libc::c_long).map(|_| ())
}

/// Borrows standard descriptor `fd` (0-2) for a query such as isatty.
pub fn borrowed_std_fd(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: 0-2 stay open for the life of the process (berth never
    // closes them; at worst they point at /dev/null), so the borrow
    // cannot outlive the descriptor.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Loads `insns` as a cgroup device program (BPF_PROG_TYPE_CGROUP_DEVICE)
/// and attaches it to the cgroup2 directory `cgroup` with
/// BPF_F_ALLOW_MULTI: programs below it can only add restrictions. The
/// program lives as long as the cgroup holds it.
pub fn attach_device_program(cgroup: &std::path::Path, insns: &[crate::devices::Insn]) -> io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    const ATTACH_CGROUP_DEVICE: u32 = 6;
    const F_ALLOW_MULTI: u32 = 2;
    let license = c"GPL";
    // union bpf_attr, the BPF_PROG_LOAD part: prog_type, insn_cnt, insns,
    // license, log_level, log_size, log_buf, kern_version, prog_flags,
    // prog_name[16], prog_ifindex, expected_attach_type.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&PROG_TYPE_CGROUP_DEVICE.to_ne_bytes());
    attr[4..8].copy_from_slice(&(insns.len() as u32).to_ne_bytes());
    attr[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
    attr[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    attr[48..48 + 11].copy_from_slice(b"berth_devic");
    attr[68..72].copy_from_slice(&ATTACH_CGROUP_DEVICE.to_ne_bytes());
    // SAFETY: `attr` is a zeroed bpf_attr of the size passed; the pointers
    // in it (instructions, license) stay valid for the call, which only
    // reads them and returns a new fd.
    let prog = check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_LOAD, attr.as_ptr(), attr.len()) })?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    let prog = unsafe { OwnedFd::from_raw_fd(prog as i32) };
    let dir = open_dir(cgroup)?;
    // The BPF_PROG_ATTACH part: target_fd, attach_bpf_fd, attach_type,
    // attach_flags.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(dir.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&(prog.as_raw_fd() as u32).to_ne_bytes());
    attr[8..12].copy_from_slice(&ATTACH_CGROUP_DEVICE.to_ne_bytes());
    attr[12..16].copy_from_slice(&F_ALLOW_MULTI.to_ne_bytes());
    // SAFETY: as above; the call only reads `attr` and the two fds it names.
    check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_ATTACH, attr.as_ptr(), attr.len()) }).map(|_| ())
}

/// How many cgroup device programs are attached to the cgroup2 dir `cgroup`
/// itself (BPF_PROG_QUERY).
pub fn device_programs_attached(cgroup: &std::path::Path) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    const BPF_PROG_QUERY: libc::c_long = 16;
    const ATTACH_CGROUP_DEVICE: u32 = 6;
    let dir = open_dir(cgroup)?;
    // The BPF_PROG_QUERY part of bpf_attr: target_fd, attach_type,
    // query_flags, attach_flags, prog_ids (NULL: count only), prog_cnt.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&(dir.as_raw_fd() as u32).to_ne_bytes());
    attr[4..8].copy_from_slice(&ATTACH_CGROUP_DEVICE.to_ne_bytes());
    // SAFETY: `attr` is a zeroed bpf_attr of the size passed; with a NULL
    // prog_ids the kernel only writes the counts back into it.
    check(unsafe { libc::syscall(libc::SYS_bpf, BPF_PROG_QUERY, attr.as_mut_ptr(), attr.len()) })?;
    Ok(u32::from_ne_bytes([attr[24], attr[25], attr[26], attr[27]]))
}

/// Whether descriptor `fd` is open in this process.
pub fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only reads the flags of a descriptor; on one that
    // is not open it fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

fn open_dir(path: &std::path::Path) -> io::Result<std::os::fd::OwnedFd> {
    let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, rustix::fs::Mode::empty())?)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE])` on the detached
/// or attached mount `fd`: sets `set` (MOUNT_ATTR_*), and when `userns`
/// is given, MOUNT_ATTR_IDMAP with that user namespace's mapping.
pub fn mount_setattr_fd(
    fd: &std::os::fd::OwnedFd,
    set: u64,
    userns: Option<&std::os::fd::OwnedFd>,
    recursive: bool,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
    let (set, ns) = match userns {
        Some(u) => (set | MOUNT_ATTR_IDMAP, u.as_raw_fd() as u64),
        None => (set, 0),
    };
    let attr = MountAttr { attr_set: set, attr_clr: 0, propagation: 0, userns_fd: ns };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    mount_setattr(fd.as_raw_fd(), c"", flags, &attr)
}

/// Makes the detached mount tree `fd` (and every mount below it) private:
/// a clone of a shared host mount joins its peer group, so mounts made
/// later on the host would propagate into it (and back).
pub fn mount_make_private_fd(fd: &std::os::fd::OwnedFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr { attr_set: 0, attr_clr: 0, propagation: libc::MS_PRIVATE, userns_fd: 0 };
    mount_setattr(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH | libc::AT_RECURSIVE, &attr)
}

/// A non-blocking exclusive whole-file open-file-description lock
/// (`F_OFD_SETLK`), what systemd takes on its lock files: it conflicts
/// with such locks on other open files and with POSIX record locks, and,
/// unlike a POSIX lock, stays until this descriptor (not any descriptor of
/// the file) is closed. EAGAIN when another holds it.
pub fn ofd_lock_exclusive(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed flock is valid (l_start = l_len = 0: the whole
    // file, l_pid = 0 as F_OFD_* requires); fcntl only reads it.
    unsafe {
        let mut l: libc::flock = std::mem::zeroed();
        l.l_type = libc::F_WRLCK as libc::c_short;
        l.l_whence = libc::SEEK_SET as libc::c_short;
        check(libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &l) as libc::c_long).map(|_| ())
    }
}

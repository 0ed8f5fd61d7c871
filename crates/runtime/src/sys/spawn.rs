//! Starting the container's command from its init without a fork: a
//! child that shares the init's memory until it execs (`CLONE_VM |
//! CLONE_VFORK`, as posix_spawn does). std's `Command` forks whenever a
//! pre-exec step is asked for (the session, the controlling terminal, the
//! descriptors handed on), and a fork of the init copies its page tables
//! and then pays a copy-on-write fault for every page either side touches.
//! glibc's posix_spawn has no step for `close_range(CLOSE_RANGE_CLOEXEC)`,
//! which is why this is written by hand.

use std::ffi::CString;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// What [`spawn`]'s child needs, made ready by the caller: the child runs
/// on the caller's memory until it execs (vfork), so it must not allocate.
pub struct Spawn {
    /// The files to try, in order (the `PATH` search done beforehand).
    pub paths: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    /// Descriptors to put at 0, 1 and 2; `None` keeps the caller's.
    pub stdio: [Option<RawFd>; 3],
    /// Descriptors 3..3+`pass` are handed on; everything above is closed
    /// on exec.
    pub pass: u32,
    /// Make a session whose controlling terminal is this descriptor
    /// (after the moves above).
    pub ctty: Option<RawFd>,
}

/// What the child reads and writes: everything by raw pointer, prepared
/// before the clone.
struct Shared {
    paths: Vec<*const libc::c_char>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: *const libc::c_char,
    stdio: [Option<RawFd>; 3],
    pass: u32,
    ctty: Option<RawFd>,
    /// The errno of the step that failed; 0 while none did.
    err: AtomicI32,
}

/// Starts `s` as a child process that shares this one's memory until it
/// execs (`clone(CLONE_VM | CLONE_VFORK)`, what posix_spawn does): no copy
/// of this process's page tables and no copy-on-write faults afterwards,
/// which a fork of the init would cost on every start. Returns the pid;
/// an error if any step before the exec failed (the child is reaped).
pub fn spawn(s: &Spawn) -> io::Result<libc::pid_t> {
    let nul = |v: &Vec<CString>| v.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect::<Vec<_>>();
    let shared = Shared {
        paths: s.paths.iter().map(|c| c.as_ptr()).collect(),
        argv: nul(&s.argv),
        envp: nul(&s.envp),
        cwd: s.cwd.as_ptr(),
        stdio: s.stdio,
        pass: s.pass,
        ctty: s.ctty,
        err: AtomicI32::new(0),
    };
    if shared.paths.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    // The child's stack: it only makes system calls through libc.
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: the stack grows down from the end of `stack`, 16-byte
    // aligned; it outlives the child's use of it, because CLONE_VFORK
    // suspends this thread until the child has execed or exited, and
    // nothing else runs in this process (the init is single-threaded).
    // The child only reads `shared` (kept alive by the same suspension)
    // and writes its atomic `err`; it calls async-signal-safe libc
    // wrappers only, never allocates and never returns into Rust code of
    // this process's stack.
    let pid = unsafe {
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        libc::clone(
            spawn_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &shared as *const Shared as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    match shared.err.load(Ordering::SeqCst) {
        0 => Ok(pid),
        e => {
            // SAFETY: waitpid on our own child only writes the status.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            Err(io::Error::from_raw_os_error(e))
        }
    }
}

/// The child of [`spawn`]: a few system calls, then exec.
extern "C" fn spawn_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's `Shared`, alive and unchanged
    // while this child runs (the parent is suspended by CLONE_VFORK).
    let s = unsafe { &*(arg as *const Shared) };
    let fail = |s: &Shared| -> libc::c_int {
        let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        s.err.store(if e == 0 { libc::EINVAL } else { e }, Ordering::SeqCst);
        127
    };
    // SAFETY (every call below): plain system calls on integers and on
    // NUL-terminated strings and NULL-terminated arrays the parent built;
    // the descriptor table is this child's own copy (no CLONE_FILES).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return fail(s);
        }
        for (to, from) in s.stdio.iter().enumerate() {
            let Some(from) = *from else { continue };
            let ok = if from == to as RawFd {
                libc::fcntl(from, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(from, to as RawFd) >= 0
            };
            if !ok {
                return fail(s);
            }
        }
        for fd in 3..3 + s.pass {
            if libc::fcntl(fd as RawFd, libc::F_SETFD, 0) != 0 {
                return fail(s);
            }
        }
        if libc::syscall(libc::SYS_close_range, 3 + s.pass, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) != 0 {
            return fail(s);
        }
        if let Some(tty) = s.ctty {
            if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) != 0 {
                return fail(s);
            }
        }
        if libc::chdir(s.cwd) != 0 {
            return fail(s);
        }
        // As execvp: the first file that runs; EACCES from one wins over
        // ENOENT from the others.
        let mut denied = false;
        for p in &s.paths {
            libc::execve(*p, s.argv.as_ptr(), s.envp.as_ptr());
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => {}
                Some(libc::EACCES) => denied = true,
                _ => return fail(s),
            }
        }
        s.err.store(if denied { libc::EACCES } else { libc::ENOENT }, Ordering::SeqCst);
        127
    }
}

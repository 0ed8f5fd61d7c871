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
    /// The files to try, in order: one for a name with a `/`, else one per
    /// `PATH` entry (the search is done beforehand).
    pub paths: Vec<CString>,
    /// Whether `paths` came from a `PATH` search: a file that is missing
    /// (or a directory that is not one) moves on to the next, as in execvp.
    pub search: bool,
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
    search: bool,
    argv: Vec<*const libc::c_char>,
    /// Per path, `/bin/sh PATH ARGS…`: a file without `#!` that the kernel
    /// refuses (ENOEXEC) runs as a shell script, as execvp does.
    sh_argv: Vec<Vec<*const libc::c_char>>,
    envp: Vec<*const libc::c_char>,
    cwd: *const libc::c_char,
    stdio: [Option<RawFd>; 3],
    pass: u32,
    ctty: Option<RawFd>,
    /// The errno of the step that failed; 0 while none did.
    err: AtomicI32,
}

const SH: &std::ffi::CStr = c"/bin/sh";
/// The child's stack, above one guard page.
const STACK: usize = 64 * 1024;
const GUARD: usize = 4096;

/// Starts `s` as a child process that shares this one's memory until it
/// execs (`clone(CLONE_VM | CLONE_VFORK)`, what posix_spawn does): no copy
/// of this process's page tables and no copy-on-write faults afterwards,
/// which a fork of the init would cost on every start. Returns the pid;
/// an error if any step before the exec failed (the child is reaped).
pub fn spawn(s: &Spawn) -> io::Result<libc::pid_t> {
    let nul = |v: &mut dyn Iterator<Item = *const libc::c_char>| v.chain([std::ptr::null()]).collect::<Vec<_>>();
    let shared = Shared {
        paths: s.paths.iter().map(|c| c.as_ptr()).collect(),
        search: s.search,
        argv: nul(&mut s.argv.iter().map(|c| c.as_ptr())),
        sh_argv: s
            .paths
            .iter()
            .map(|p| nul(&mut [SH.as_ptr(), p.as_ptr()].into_iter().chain(s.argv.iter().skip(1).map(|c| c.as_ptr()))))
            .collect(),
        envp: nul(&mut s.envp.iter().map(|c| c.as_ptr())),
        cwd: s.cwd.as_ptr(),
        stdio: s.stdio,
        pass: s.pass,
        ctty: s.ctty,
        err: AtomicI32::new(0),
    };
    if shared.paths.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    // SAFETY: a fresh private anonymous mapping, ours alone; its lowest
    // page is made inaccessible so that an overflow of the child's stack
    // faults instead of writing over this process's memory.
    let base = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            STACK + GUARD,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        if libc::mprotect(p, GUARD, libc::PROT_NONE) != 0 {
            let e = io::Error::last_os_error();
            libc::munmap(p, STACK + GUARD);
            return Err(e);
        }
        p
    };
    // SAFETY: the stack grows down from the end of the mapping (page
    // aligned, so 16-byte aligned); it outlives the child's use of it,
    // because CLONE_VFORK suspends this thread until the child has execed
    // or exited, and nothing else runs in this process (the init is
    // single-threaded). The child only reads `shared` (kept alive by the
    // same suspension) and writes its atomic `err`; it calls
    // async-signal-safe libc wrappers only, never allocates and never
    // returns into Rust code of this process's stack. Without
    // CLONE_SETTLS it shares this thread's TLS, so its errno writes land
    // in ours: harmless, since this thread is suspended meanwhile and reads
    // errno after the clone only when the clone itself failed.
    let pid = unsafe {
        let top = (base as *mut u8).add(STACK + GUARD);
        libc::clone(
            spawn_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &shared as *const Shared as *mut libc::c_void,
        )
    };
    let clone_err = io::Error::last_os_error();
    // SAFETY: the child is done with the stack (execed or exited).
    unsafe { libc::munmap(base, STACK + GUARD) };
    if pid < 0 {
        return Err(clone_err);
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

fn errno() -> libc::c_int {
    io::Error::last_os_error().raw_os_error().filter(|e| *e != 0).unwrap_or(libc::EINVAL)
}

/// The child of [`spawn`]: a few system calls, then exec.
extern "C" fn spawn_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's `Shared`, alive and unchanged
    // while this child runs (the parent is suspended by CLONE_VFORK).
    let s = unsafe { &*(arg as *const Shared) };
    let fail = |s: &Shared, e: libc::c_int| -> libc::c_int {
        s.err.store(e, Ordering::SeqCst);
        127
    };
    // SAFETY (every call below): plain system calls on integers, on a
    // zeroed sigaction and on NUL-terminated strings and NULL-terminated
    // arrays the parent built; the descriptor table and the signal
    // handlers are this child's own copies (no CLONE_FILES, no
    // CLONE_SIGHAND).
    unsafe {
        // What std resets before an exec: SIGPIPE is ignored in berth
        // (Rust's runtime does that) and an ignored signal stays ignored
        // across exec. The runtime's SIGSEGV and SIGBUS handlers must not
        // run on shared memory either.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in [libc::SIGPIPE, libc::SIGSEGV, libc::SIGBUS] {
            if libc::sigaction(sig, &dfl, std::ptr::null_mut()) != 0 {
                return fail(s, errno());
            }
        }
        super::unblock_all();
        for (to, from) in s.stdio.iter().enumerate() {
            let Some(from) = *from else { continue };
            let ok = if from == to as RawFd {
                libc::fcntl(from, libc::F_SETFD, 0) == 0
            } else {
                libc::dup2(from, to as RawFd) >= 0
            };
            if !ok {
                return fail(s, errno());
            }
        }
        // (The sys helpers below are plain system calls too.)
        if super::pass_fds(s.pass).is_err() {
            return fail(s, errno());
        }
        if let Some(tty) = s.ctty {
            if libc::setsid() < 0 || super::set_controlling_tty(tty).is_err() {
                return fail(s, errno());
            }
        }
        if libc::chdir(s.cwd) != 0 {
            return fail(s, errno());
        }
        // As execvp: the first file that runs; in a search, EACCES from
        // one wins over ENOENT from the others.
        let mut denied = false;
        for (p, sh) in s.paths.iter().zip(&s.sh_argv) {
            libc::execve(*p, s.argv.as_ptr(), s.envp.as_ptr());
            let mut e = errno();
            if e == libc::ENOEXEC {
                libc::execve(SH.as_ptr(), sh.as_ptr(), s.envp.as_ptr());
                e = errno();
            }
            match e {
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT if s.search => {}
                libc::EACCES if s.search => denied = true,
                e => return fail(s, e),
            }
        }
        fail(s, if denied { libc::EACCES } else { libc::ENOENT })
    }
}

//! The seccomp filters, built at compile time by a `const fn`: no filter
//! is compiled at start (systemd-nspawn spends most of its start doing
//! that); installing one is one `prctl`.
//!
//! An allow-list in the spirit of moby's default profile
//! (`profiles/seccomp/default.json`): the calls a program needs pass;
//! calls that reach kernel-global state no namespace isolates (modules,
//! kexec, swap, the clock, the keyring, BPF, perf, raw I/O ports, the
//! syslog, io_uring, handles that bypass the mount tree) fail with `EPERM`,
//! as do the ioctls that push input into a terminal (TIOCSTI, TIOCLINUX)
//! and `personality` flags beyond the harmless ones; anything the list does
//! not know (newer calls) fails with `ENOSYS`, so programs fall back as on
//! an older kernel. Native architecture only: i386 calls on x86_64 fail
//! with `ENOSYS` and x32 ones with `EPERM`.
//!
//! Two variants: [`FILTER`] for containers that hold CAP_SYS_ADMIN, and
//! [`FILTER_NO_ADMIN`] for those that do not, where the mount API,
//! `unshare`/`setns` and namespace-creating `clone` flags are refused
//! here as well as by the kernel (moby does the same), and `clone3`, whose
//! flags a filter cannot read, says `ENOSYS` so libc falls back to `clone`.
//!
//! `statmount` and `listmount` stay off the list (ENOSYS): a container
//! whose init was split off into a nested user namespace keeps the host's
//! mounts below its root, out of reach of every path but listed by those
//! two calls to a root with CAP_SYS_ADMIN there.
//!
//! Written by hand: libseccomp would add a C dependency and a run-time
//! compile step, which is what this avoids.

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// `seccomp_data.args[0]` and `args[1]`, low words (little-endian).
const OFFSET_ARG0: u32 = 16;
const OFFSET_ARG1: u32 = 24;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
/// x32 syscalls have this bit set on x86_64; nothing else reaches it.
const X32_BIT: u32 = 0x4000_0000;

/// A system call: its name (as libc spells it, `SYS_` and all) and number.
type Sys = (&'static str, u32);

macro_rules! nrs {
    ($($n:ident),* $(,)?) => { &[$((stringify!($n), libc::$n as u32)),*] };
}

// Numbers from 424 up are the same on every architecture; these are newer
// than the libc crate's tables.
const SYS_CACHESTAT: u32 = 451;
const SYS_MAP_SHADOW_STACK: u32 = 453;
const SYS_FUTEX_WAKE: u32 = 454;
const SYS_FUTEX_WAIT: u32 = 455;
const SYS_FUTEX_REQUEUE: u32 = 456;

/// Allowed on every architecture, whatever the capabilities.
const ALLOW: &[Sys] = nrs![
    SYS_accept,
    SYS_accept4,
    SYS_bind,
    SYS_brk,
    SYS_capget,
    SYS_capset,
    SYS_chdir,
    SYS_clock_getres,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_clone,
    SYS_close,
    SYS_close_range,
    SYS_connect,
    SYS_copy_file_range,
    SYS_dup,
    SYS_dup3,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_eventfd2,
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_exit_group,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_fadvise64,
    SYS_fallocate,
    SYS_fanotify_mark,
    SYS_fchdir,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchmodat2,
    SYS_fchown,
    SYS_fchownat,
    SYS_fcntl,
    SYS_fdatasync,
    SYS_fgetxattr,
    SYS_flistxattr,
    SYS_flock,
    SYS_fremovexattr,
    SYS_fsetxattr,
    SYS_fstat,
    SYS_fstatfs,
    SYS_fsync,
    SYS_ftruncate,
    SYS_futex,
    SYS_futex_waitv,
    SYS_get_mempolicy,
    SYS_get_robust_list,
    SYS_getcpu,
    SYS_getcwd,
    SYS_getdents64,
    SYS_getegid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getgroups,
    SYS_getitimer,
    SYS_getpeername,
    SYS_getpgid,
    SYS_getpid,
    SYS_getppid,
    SYS_getpriority,
    SYS_getrandom,
    SYS_getresgid,
    SYS_getresuid,
    SYS_getrlimit,
    SYS_getrusage,
    SYS_getsid,
    SYS_getsockname,
    SYS_getsockopt,
    SYS_gettid,
    SYS_gettimeofday,
    SYS_getuid,
    SYS_getxattr,
    SYS_inotify_add_watch,
    SYS_inotify_init1,
    SYS_inotify_rm_watch,
    SYS_io_cancel,
    SYS_io_destroy,
    SYS_io_getevents,
    SYS_io_setup,
    SYS_io_submit,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_kcmp,
    SYS_kill,
    SYS_landlock_add_rule,
    SYS_landlock_create_ruleset,
    SYS_landlock_restrict_self,
    SYS_lgetxattr,
    SYS_linkat,
    SYS_listen,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_lremovexattr,
    SYS_lseek,
    SYS_lsetxattr,
    SYS_madvise,
    SYS_mbind,
    SYS_membarrier,
    SYS_memfd_create,
    SYS_memfd_secret,
    SYS_migrate_pages,
    SYS_mincore,
    SYS_mkdirat,
    SYS_mknodat,
    SYS_mlock,
    SYS_mlock2,
    SYS_mlockall,
    SYS_mmap,
    SYS_move_pages,
    SYS_mprotect,
    SYS_mq_getsetattr,
    SYS_mq_notify,
    SYS_mq_open,
    SYS_mq_timedreceive,
    SYS_mq_timedsend,
    SYS_mq_unlink,
    SYS_mremap,
    SYS_mseal,
    SYS_msgctl,
    SYS_msgget,
    SYS_msgrcv,
    SYS_msgsnd,
    SYS_msync,
    SYS_munlock,
    SYS_munlockall,
    SYS_munmap,
    SYS_name_to_handle_at,
    SYS_nanosleep,
    SYS_newfstatat,
    SYS_openat,
    SYS_openat2,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_pipe2,
    SYS_pkey_alloc,
    SYS_pkey_free,
    SYS_pkey_mprotect,
    SYS_ppoll,
    SYS_prctl,
    SYS_pread64,
    SYS_preadv,
    SYS_preadv2,
    SYS_prlimit64,
    SYS_process_madvise,
    SYS_process_mrelease,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_pselect6,
    SYS_ptrace,
    SYS_pwrite64,
    SYS_pwritev,
    SYS_pwritev2,
    SYS_read,
    SYS_readahead,
    SYS_readlinkat,
    SYS_readv,
    SYS_reboot,
    SYS_recvfrom,
    SYS_recvmmsg,
    SYS_recvmsg,
    SYS_remap_file_pages,
    SYS_removexattr,
    SYS_renameat2,
    SYS_restart_syscall,
    SYS_rseq,
    SYS_rt_sigaction,
    SYS_rt_sigpending,
    SYS_rt_sigprocmask,
    SYS_rt_sigqueueinfo,
    SYS_rt_sigreturn,
    SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait,
    SYS_rt_tgsigqueueinfo,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_getaffinity,
    SYS_sched_getattr,
    SYS_sched_getparam,
    SYS_sched_getscheduler,
    SYS_sched_rr_get_interval,
    SYS_sched_setaffinity,
    SYS_sched_setattr,
    SYS_sched_setparam,
    SYS_sched_setscheduler,
    SYS_sched_yield,
    SYS_seccomp,
    SYS_semctl,
    SYS_semget,
    SYS_semop,
    SYS_semtimedop,
    SYS_sendfile,
    SYS_sendmmsg,
    SYS_sendmsg,
    SYS_sendto,
    SYS_set_mempolicy,
    SYS_set_mempolicy_home_node,
    SYS_set_robust_list,
    SYS_set_tid_address,
    SYS_setdomainname,
    SYS_setfsgid,
    SYS_setfsuid,
    SYS_setgid,
    SYS_setgroups,
    SYS_sethostname,
    SYS_setitimer,
    SYS_setpgid,
    SYS_setpriority,
    SYS_setregid,
    SYS_setresgid,
    SYS_setresuid,
    SYS_setreuid,
    SYS_setrlimit,
    SYS_setsid,
    SYS_setsockopt,
    SYS_setuid,
    SYS_setxattr,
    SYS_shmat,
    SYS_shmctl,
    SYS_shmdt,
    SYS_shmget,
    SYS_shutdown,
    SYS_sigaltstack,
    SYS_signalfd4,
    SYS_socket,
    SYS_socketpair,
    SYS_splice,
    SYS_statfs,
    SYS_statx,
    SYS_symlinkat,
    SYS_sync,
    SYS_sync_file_range,
    SYS_syncfs,
    SYS_sysinfo,
    SYS_tee,
    SYS_tgkill,
    SYS_timer_create,
    SYS_timer_delete,
    SYS_timer_getoverrun,
    SYS_timer_gettime,
    SYS_timer_settime,
    SYS_timerfd_create,
    SYS_timerfd_gettime,
    SYS_timerfd_settime,
    SYS_times,
    SYS_tkill,
    SYS_truncate,
    SYS_umask,
    SYS_uname,
    SYS_unlinkat,
    SYS_utimensat,
    SYS_vhangup,
    SYS_vmsplice,
    SYS_wait4,
    SYS_waitid,
    SYS_write,
    SYS_writev,
];

/// Also allowed, numbers the libc crate lacks.
const ALLOW_NEW: &[Sys] = &[
    ("SYS_cachestat", SYS_CACHESTAT),
    ("SYS_map_shadow_stack", SYS_MAP_SHADOW_STACK),
    ("SYS_futex_wake", SYS_FUTEX_WAKE),
    ("SYS_futex_wait", SYS_FUTEX_WAIT),
    ("SYS_futex_requeue", SYS_FUTEX_REQUEUE),
];

/// The legacy calls x86_64 keeps beside their *at/2 successors.
#[cfg(target_arch = "x86_64")]
const ALLOW_ARCH: &[Sys] = nrs![
    SYS_access,
    SYS_alarm,
    SYS_arch_prctl,
    SYS_chmod,
    SYS_chown,
    SYS_creat,
    SYS_dup2,
    SYS_epoll_create,
    SYS_epoll_wait,
    SYS_eventfd,
    SYS_fork,
    SYS_futimesat,
    SYS_get_thread_area,
    SYS_getdents,
    SYS_getpgrp,
    SYS_inotify_init,
    SYS_lchown,
    SYS_link,
    SYS_lstat,
    SYS_mkdir,
    SYS_mknod,
    SYS_open,
    SYS_pause,
    SYS_pipe,
    SYS_poll,
    SYS_readlink,
    SYS_rename,
    SYS_renameat,
    SYS_rmdir,
    SYS_select,
    SYS_set_thread_area,
    SYS_signalfd,
    SYS_stat,
    SYS_symlink,
    SYS_sysfs,
    SYS_time,
    SYS_unlink,
    SYS_ustat,
    SYS_utime,
    SYS_utimes,
    SYS_vfork,
];
#[cfg(target_arch = "x86_64")]
const ALLOW_ARCH_NEW: &[Sys] = &[("SYS_io_pgetevents", 333)];
#[cfg(target_arch = "aarch64")]
const ALLOW_ARCH: &[Sys] = &[];
#[cfg(target_arch = "aarch64")]
const ALLOW_ARCH_NEW: &[Sys] = &[("SYS_io_pgetevents", 292)];

/// What only CAP_SYS_ADMIN makes useful: the mount API and entering or
/// making namespaces. Allowed with it, `EPERM` without.
const ADMIN: &[Sys] = nrs![
    SYS_mount,
    SYS_umount2,
    SYS_pivot_root,
    SYS_unshare,
    SYS_setns,
    SYS_fsopen,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fspick,
    SYS_move_mount,
    SYS_open_tree,
    SYS_mount_setattr,
    SYS_quotactl,
    SYS_quotactl_fd,
    SYS_fanotify_init,
    SYS_chroot,
    SYS_clone3,
];

/// Refused with `EPERM` whatever the capabilities: kernel-global state no
/// namespace isolates. (Anything else not allowed gets `ENOSYS`.)
const DENY: &[Sys] = nrs![
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_open_by_handle_at,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_add_key,
    SYS_keyctl,
    SYS_request_key,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_clock_adjtime,
    SYS_adjtimex,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_syslog,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_pidfd_getfd,
];
#[cfg(target_arch = "x86_64")]
const DENY_ARCH: &[Sys] = nrs![SYS_iopl, SYS_ioperm, SYS_uselib, SYS__sysctl, SYS_modify_ldt, SYS_lookup_dcookie];
#[cfg(target_arch = "aarch64")]
const DENY_ARCH: &[Sys] = nrs![SYS_lookup_dcookie];

/// ioctls refused whatever the descriptor: pushing input into a terminal
/// (TIOCSTI) or console (TIOCLINUX) is how a process that holds a terminal
/// types commands into the shell that owns it.
const IOCTL_DENY: [u32; 2] = [libc::TIOCSTI as u32, 0x541C /* TIOCLINUX */];

/// `personality` values allowed (moby's): Linux, PER_LINUX32, UNAME26 and
/// both, and the query. READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE and the like
/// weaken the process's own defences.
const PERSONALITY_OK: [u32; 5] = [0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// clone flags that make namespaces.
const NS_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// The most system call numbers the lists may name (a format limit of the
/// const builder's scratch space).
const MAX_LISTED: usize = 1024;

/// What a range of system call numbers gets.
const ACT_ALLOW: u8 = 0;
const ACT_EPERM: u8 = 1;
const ACT_ENOSYS: u8 = 2;

const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter { code, jt: 0, jf: 0, k }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// Appends `ins` at `n` (when it fits) and returns the next index.
const fn put(f: &mut [SockFilter], n: usize, ins: SockFilter) -> usize {
    if n < f.len() {
        f[n] = ins;
    }
    n + 1
}

/// The listed numbers and their actions, sorted by number; the first
/// list naming a number wins (`deny` comes first). Returns the count.
const fn sorted(deny: &[&[Sys]], allow: &[&[Sys]], out: &mut [(u32, u8); MAX_LISTED]) -> usize {
    let mut n = 0;
    let mut pass = 0;
    while pass < 2 {
        let lists = if pass == 0 { deny } else { allow };
        let act = if pass == 0 { ACT_EPERM } else { ACT_ALLOW };
        let mut l = 0;
        while l < lists.len() {
            let mut i = 0;
            while i < lists[l].len() {
                let nr = lists[l][i].1;
                let mut seen = false;
                let mut j = 0;
                while j < n {
                    if out[j].0 == nr {
                        seen = true;
                    }
                    j += 1;
                }
                if !seen && n < MAX_LISTED {
                    // Insertion into the sorted prefix.
                    let mut k = n;
                    while k > 0 && out[k - 1].0 > nr {
                        out[k] = out[k - 1];
                        k -= 1;
                    }
                    out[k] = (nr, act);
                    n += 1;
                }
                i += 1;
            }
            l += 1;
        }
        pass += 1;
    }
    n
}

/// Cuts the number line into segments `[start, next start)` with one
/// action each (unlisted numbers: ENOSYS), neighbours that agree merged.
/// Returns the count; `segs[0]` starts at 0.
const fn segments(listed: &[(u32, u8); MAX_LISTED], n: usize, segs: &mut [(u32, u8); 2 * MAX_LISTED + 1]) -> usize {
    segs[0] = (0, ACT_ENOSYS);
    let mut m = 1;
    let mut i = 0;
    while i < n {
        let (nr, act) = listed[i];
        if segs[m - 1].0 == nr {
            segs[m - 1].1 = act;
        } else if segs[m - 1].1 != act {
            segs[m] = (nr, act);
            m += 1;
        }
        // Unlisted numbers follow until the next listed one.
        if !(i + 1 < n && listed[i + 1].0 == nr + 1) {
            segs[m] = (nr + 1, ACT_ENOSYS);
            m += 1;
        }
        i += 1;
    }
    m
}

/// Emits the decision tree over `segs[lo..hi]` at `n` (a JGE per inner
/// node, preorder; leaves are jumps to the shared returns at `rets`).
const fn emit_tree(
    f: &mut [SockFilter],
    n: usize,
    segs: &[(u32, u8); 2 * MAX_LISTED + 1],
    lo: usize,
    hi: usize,
    rets: usize,
) -> usize {
    if hi - lo <= 1 {
        return n;
    }
    let mid = (lo + hi) / 2;
    let left_size = mid - lo - 1;
    let here = n;
    let jt = if hi - mid == 1 { rets + segs[mid].1 as usize - (here + 1) } else { left_size };
    let jf = if mid - lo == 1 { rets + segs[lo].1 as usize - (here + 1) } else { 0 };
    let n = put(f, n, jump(JGE_K, segs[mid].0, jt as u8, jf as u8));
    let n = emit_tree(f, n, segs, lo, mid, rets);
    emit_tree(f, n, segs, mid, hi, rets)
}

/// Writes the filter into `f` (as far as it fits) and returns its length.
const fn layout(admin: bool, f: &mut [SockFilter]) -> usize {
    if admin {
        layout_lists(false, &[DENY, DENY_ARCH], &[ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW, ADMIN], f)
    } else {
        layout_lists(true, &[DENY, DENY_ARCH, ADMIN], &[ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW], f)
    }
}

/// The filter: the fixed checks, then `deny` (EPERM) and `allow`; with
/// `guard_clone`, namespace flags of clone refused and clone3 ENOSYS.
const fn layout_lists(guard_clone: bool, deny: &[&[Sys]], allow: &[&[Sys]], f: &mut [SockFilter]) -> usize {
    let mut n = 0;
    n = put(f, n, stmt(LD_W_ABS, OFFSET_ARCH));
    n = put(f, n, jump(JEQ_K, AUDIT_ARCH, 1, 0));
    n = put(f, n, stmt(RET_K, ENOSYS));
    n = put(f, n, stmt(LD_W_ABS, OFFSET_NR));
    n = put(f, n, jump(JGE_K, X32_BIT, 0, 1));
    n = put(f, n, stmt(RET_K, EPERM));
    // ioctl: the request number decides; the kernel reads it as 32 bits.
    n = put(f, n, jump(JEQ_K, libc::SYS_ioctl as u32, 0, 5));
    n = put(f, n, stmt(LD_W_ABS, OFFSET_ARG1));
    n = put(f, n, jump(JEQ_K, IOCTL_DENY[0], 1, 0));
    n = put(f, n, jump(JEQ_K, IOCTL_DENY[1], 0, 1));
    n = put(f, n, stmt(RET_K, EPERM));
    n = put(f, n, stmt(RET_K, RET_ALLOW));
    // personality: only the values in PERSONALITY_OK.
    let p = PERSONALITY_OK.len();
    n = put(f, n, jump(JEQ_K, libc::SYS_personality as u32, 0, (p + 3) as u8));
    n = put(f, n, stmt(LD_W_ABS, OFFSET_ARG0));
    let mut i = 0;
    while i < p {
        n = put(f, n, jump(JEQ_K, PERSONALITY_OK[i], (p - i) as u8, 0));
        i += 1;
    }
    n = put(f, n, stmt(RET_K, EPERM));
    n = put(f, n, stmt(RET_K, RET_ALLOW));
    if guard_clone {
        // clone: no namespace flags (its first argument on x86_64 and arm64).
        n = put(f, n, jump(JEQ_K, libc::SYS_clone as u32, 0, 4));
        n = put(f, n, stmt(LD_W_ABS, OFFSET_ARG0));
        n = put(f, n, jump(JSET_K, NS_FLAGS, 0, 1));
        n = put(f, n, stmt(RET_K, EPERM));
        n = put(f, n, stmt(RET_K, RET_ALLOW));
        // clone3 hides its flags in memory: say it does not exist.
        n = put(f, n, jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
        n = put(f, n, stmt(RET_K, ENOSYS));
    }
    // The rest is a binary search over the number line: a few compares per
    // call whatever it is, and a program short enough that the kernel's
    // JIT pass at install costs little.
    let mut listed = [(0u32, 0u8); MAX_LISTED];
    let count = sorted(deny, allow, &mut listed);
    let mut segs = [(0u32, 0u8); 2 * MAX_LISTED + 1];
    let nseg = segments(&listed, count, &mut segs);
    let rets = n + nseg - 1;
    n = emit_tree(f, n, &segs, 0, nseg, rets);
    n = put(f, n, stmt(RET_K, RET_ALLOW));
    n = put(f, n, stmt(RET_K, EPERM));
    put(f, n, stmt(RET_K, ENOSYS))
}

const SCRATCH: usize = 1024;
/// Instructions in [`FILTER`] and [`FILTER_NO_ADMIN`].
pub const LEN: usize = layout(true, &mut [stmt(RET_K, 0); SCRATCH]);
pub const LEN_NO_ADMIN: usize = layout(false, &mut [stmt(RET_K, 0); SCRATCH]);
// Jumps to the shared returns are u8 offsets: the programs must stay short.
const _: () = assert!(LEN < 256 && LEN_NO_ADMIN < 256);

const fn build<const L: usize>(admin: bool) -> [SockFilter; L] {
    let mut f = [stmt(RET_K, 0); L];
    layout(admin, &mut f);
    f
}

/// The filter for a container that holds CAP_SYS_ADMIN.
pub static FILTER: [SockFilter; LEN] = build(true);
/// The filter for a container without CAP_SYS_ADMIN.
pub static FILTER_NO_ADMIN: [SockFilter; LEN_NO_ADMIN] = build(false);

/// The filter for a process with capability mask `caps`.
pub fn for_caps(caps: u64) -> &'static [SockFilter] {
    if caps & crate::caps::SYS_ADMIN != 0 {
        &FILTER
    } else {
        &FILTER_NO_ADMIN
    }
}

/// nspawn's `@group` names berth knows, by the calls they hold.
const GROUPS: &[(&str, &[&str])] = &[
    ("@clock", &["adjtimex", "clock_adjtime", "clock_settime", "settimeofday"]),
    ("@module", &["init_module", "finit_module", "delete_module"]),
    ("@raw-io", &["iopl", "ioperm"]),
    ("@reboot", &["reboot", "kexec_load", "kexec_file_load"]),
    ("@swap", &["swapon", "swapoff"]),
    ("@keyring", &["add_key", "keyctl", "request_key"]),
    ("@debug", &["ptrace", "process_vm_readv", "process_vm_writev", "perf_event_open", "kcmp", "lookup_dcookie"]),
    (
        "@mount",
        &[
            "mount",
            "umount2",
            "pivot_root",
            "chroot",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "move_mount",
            "open_tree",
            "mount_setattr",
        ],
    ),
    ("@io-uring", &["io_uring_setup", "io_uring_enter", "io_uring_register"]),
    ("@privileged", &["acct", "bpf", "userfaultfd", "syslog", "open_by_handle_at", "quotactl", "quotactl_fd"]),
];

/// Every call berth's lists name.
fn known() -> impl Iterator<Item = &'static Sys> {
    [ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW, ADMIN, DENY, DENY_ARCH].into_iter().flatten()
}

/// `--system-call-filter` (systemd-nspawn's syntax): calls and `@group`s
/// separated by spaces, each value an addition to what is allowed, or with
/// a leading `~` a list of calls to refuse. Later values win over earlier
/// ones for a call named twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow: Vec<u32>,
    pub deny: Vec<u32>,
}

impl Policy {
    pub fn parse(values: &[String]) -> Result<Policy, String> {
        let mut p = Policy::default();
        for v in values {
            let (deny, list) = match v.trim_start().strip_prefix('~') {
                Some(rest) => (true, rest),
                None => (false, v.as_str()),
            };
            for name in list.split_whitespace() {
                let names: Vec<&str> = match GROUPS.iter().find(|(g, _)| *g == name) {
                    Some((_, calls)) => calls.to_vec(),
                    None if name.starts_with('@') => {
                        let known: Vec<&str> = GROUPS.iter().map(|(g, _)| *g).collect();
                        return Err(format!("unknown system call group {name}: known are {}", known.join(" ")));
                    }
                    None => vec![name],
                };
                for n in names {
                    let want = format!("SYS_{n}");
                    // A call this architecture lacks (in a group) is skipped;
                    // one named alone must exist.
                    let Some(&(_, nr)) = known().find(|(s, _)| *s == want) else {
                        if name.starts_with('@') {
                            continue;
                        }
                        return Err(format!("unknown system call {n:?} in --system-call-filter"));
                    };
                    let (add, remove) = if deny { (&mut p.deny, &mut p.allow) } else { (&mut p.allow, &mut p.deny) };
                    remove.retain(|x| *x != nr);
                    if !add.contains(&nr) {
                        add.push(nr);
                    }
                }
            }
        }
        Ok(p)
    }

    /// The filter for a process with effective capability mask `caps`:
    /// one of the compiled-in ones when the policy changes nothing.
    pub fn filter(&self, caps: u64) -> std::borrow::Cow<'static, [SockFilter]> {
        self.try_filter(caps).unwrap_or(std::borrow::Cow::Borrowed(&FILTER_NO_ADMIN))
    }

    /// [`Policy::filter`], or why the policy cannot be compiled (a list
    /// so scattered that the program outgrows its jumps).
    pub fn try_filter(&self, caps: u64) -> Result<std::borrow::Cow<'static, [SockFilter]>, String> {
        let admin = caps & crate::caps::SYS_ADMIN != 0;
        if self.allow.is_empty() && self.deny.is_empty() {
            return Ok(std::borrow::Cow::Borrowed(for_caps(caps)));
        }
        let base_deny: Vec<&[Sys]> = if admin { vec![DENY, DENY_ARCH] } else { vec![DENY, DENY_ARCH, ADMIN] };
        let base_allow: Vec<&[Sys]> = if admin {
            vec![ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW, ADMIN]
        } else {
            vec![ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW]
        };
        let keep = |lists: Vec<&[Sys]>, drop: &[u32]| -> Vec<Sys> {
            lists.into_iter().flatten().filter(|s| !drop.contains(&s.1)).copied().collect()
        };
        let mut deny = keep(base_deny, &self.allow);
        deny.extend(self.deny.iter().map(|&nr| ("", nr)));
        let mut allow = keep(base_allow, &self.deny);
        allow.extend(
            self.allow.iter().filter(|nr| !allow.iter().any(|s| s.1 == **nr)).map(|&nr| ("", nr)).collect::<Vec<_>>(),
        );
        let mut f = vec![stmt(RET_K, 0); SCRATCH];
        let n = layout_lists(!admin && !self.allow.contains(&(libc::SYS_clone3 as u32)), &[&deny], &[&allow], &mut f);
        if n >= 256 {
            return Err(format!(
                "--system-call-filter: {} entries make a filter too long to compile; name fewer calls",
                self.allow.len() + self.deny.len()
            ));
        }
        f.truncate(n);
        Ok(std::borrow::Cow::Owned(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_moves_calls_between_the_lists() {
        let p = Policy::parse(&["@keyring".into(), "~@clock uname".into()]).unwrap();
        let f = p.filter(1 << 21);
        let keyctl = libc::SYS_keyctl as u32;
        assert_eq!(eval(&f, AUDIT_ARCH, keyctl, [0, 0]), RET_ALLOW, "added with @keyring");
        assert_eq!(eval(&f, AUDIT_ARCH, libc::SYS_uname as u32, [0, 0]), EPERM, "refused with ~uname");
        assert_eq!(eval(&f, AUDIT_ARCH, libc::SYS_clock_settime as u32, [0, 0]), EPERM);
        assert_eq!(eval(&f, AUDIT_ARCH, libc::SYS_read as u32, [0, 0]), RET_ALLOW);
        assert_eq!(eval(&f, AUDIT_ARCH, libc::SYS_ioctl as u32, [0, libc::TIOCSTI as u32]), EPERM);
        // Without CAP_SYS_ADMIN the mount API stays refused unless added.
        let f = p.filter(0);
        assert_eq!(eval(&f, AUDIT_ARCH, libc::SYS_mount as u32, [0, 0]), EPERM);
        let f = Policy::parse(&["@mount".into()]).unwrap().filter(0);
        assert_eq!(eval(&f, AUDIT_ARCH, libc::SYS_mount as u32, [0, 0]), RET_ALLOW);
        assert!(matches!(Policy::default().filter(0), std::borrow::Cow::Borrowed(_)));
        assert!(Policy::parse(&["@nope".into()]).is_err());
        assert!(Policy::parse(&["frobnicate".into()]).is_err());
    }

    /// Runs `filter` on (arch, nr, args) like the kernel would.
    fn eval(filter: &[SockFilter], arch: u32, nr: u32, args: [u32; 2]) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = filter[pc];
            match ins.code {
                LD_W_ABS => {
                    acc = match ins.k {
                        OFFSET_ARCH => arch,
                        OFFSET_NR => nr,
                        OFFSET_ARG0 => args[0],
                        OFFSET_ARG1 => args[1],
                        k => panic!("load of offset {k}"),
                    }
                }
                JEQ_K => pc += if acc == ins.k { ins.jt as usize } else { ins.jf as usize },
                JGE_K => pc += if acc >= ins.k { ins.jt as usize } else { ins.jf as usize },
                JSET_K => pc += if acc & ins.k != 0 { ins.jt as usize } else { ins.jf as usize },
                RET_K => return ins.k,
                c => panic!("bad opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    fn both() -> [&'static [SockFilter]; 2] {
        [&FILTER, &FILTER_NO_ADMIN]
    }

    #[test]
    fn every_listed_call_gets_its_answer() {
        for f in both() {
            for list in [ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW] {
                for &(_, nr) in list {
                    if nr == libc::SYS_clone as u32 {
                        continue;
                    }
                    assert_eq!(eval(f, AUDIT_ARCH, nr, [0, 0]), RET_ALLOW, "nr {nr}");
                }
            }
            for list in [DENY, DENY_ARCH] {
                for &(_, nr) in list {
                    assert_eq!(eval(f, AUDIT_ARCH, nr, [0, 0]), EPERM, "nr {nr}");
                }
            }
            assert_eq!(eval(f, AUDIT_ARCH, 1000, [0, 0]), ENOSYS, "an unknown call");
            assert_eq!(eval(f, AUDIT_ARCH, X32_BIT | 1, [0, 0]), EPERM, "x32");
            assert_eq!(eval(f, 0x4000_0003, 1, [0, 0]), ENOSYS, "i386");
        }
        for &(_, nr) in ADMIN {
            assert_eq!(eval(&FILTER, AUDIT_ARCH, nr, [0, 0]), RET_ALLOW, "admin nr {nr}");
            let want = if nr == libc::SYS_clone3 as u32 { ENOSYS } else { EPERM };
            assert_eq!(eval(&FILTER_NO_ADMIN, AUDIT_ARCH, nr, [0, 0]), want, "no-admin nr {nr}");
        }
    }

    #[test]
    fn terminal_injection_ioctls_are_refused_and_others_pass() {
        let ioctl = libc::SYS_ioctl as u32;
        for f in both() {
            assert_eq!(eval(f, AUDIT_ARCH, ioctl, [0, libc::TIOCSTI as u32]), EPERM);
            assert_eq!(eval(f, AUDIT_ARCH, ioctl, [0, 0x541C]), EPERM);
            assert_eq!(eval(f, AUDIT_ARCH, ioctl, [0, libc::TIOCGWINSZ as u32]), RET_ALLOW);
            assert_eq!(eval(f, AUDIT_ARCH, ioctl, [0, libc::TCGETS as u32]), RET_ALLOW);
            // The request number is the second argument of ioctl only.
            assert_eq!(eval(f, AUDIT_ARCH, libc::SYS_read as u32, [0, libc::TIOCSTI as u32]), RET_ALLOW);
        }
    }

    #[test]
    fn personality_and_clone_flags() {
        let pers = libc::SYS_personality as u32;
        let clone = libc::SYS_clone as u32;
        for f in both() {
            assert_eq!(eval(f, AUDIT_ARCH, pers, [0xffff_ffff, 0]), RET_ALLOW);
            assert_eq!(eval(f, AUDIT_ARCH, pers, [0, 0]), RET_ALLOW);
            assert_eq!(eval(f, AUDIT_ARCH, pers, [0x40_0000, 0]), EPERM, "READ_IMPLIES_EXEC");
            assert_eq!(eval(f, AUDIT_ARCH, pers, [0x4_0000, 0]), EPERM, "ADDR_NO_RANDOMIZE");
            assert_eq!(eval(f, AUDIT_ARCH, clone, [libc::SIGCHLD as u32, 0]), RET_ALLOW);
        }
        let ns = (libc::CLONE_NEWUSER | libc::SIGCHLD) as u32;
        assert_eq!(eval(&FILTER, AUDIT_ARCH, clone, [ns, 0]), RET_ALLOW);
        assert_eq!(eval(&FILTER_NO_ADMIN, AUDIT_ARCH, clone, [ns, 0]), EPERM);
        assert_eq!(for_caps(1 << 21).len(), LEN);
        assert_eq!(for_caps(0).len(), LEN_NO_ADMIN);
    }

    #[test]
    fn the_search_tree_answers_as_the_lists_say_for_every_number() {
        for (f, admin) in [(&FILTER[..], true), (&FILTER_NO_ADMIN[..], false)] {
            let deny: Vec<u32> = [DENY, DENY_ARCH].concat().iter().map(|s| s.1).collect();
            let admin_nrs: Vec<u32> = ADMIN.iter().map(|s| s.1).collect();
            let allow: Vec<u32> = [ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW].concat().iter().map(|s| s.1).collect();
            for nr in 0..1100u32 {
                if [libc::SYS_ioctl, libc::SYS_personality, libc::SYS_clone, libc::SYS_clone3].contains(&(nr as i64)) {
                    continue; // argument checks, tested apart
                }
                let want = if deny.contains(&nr) || (!admin && admin_nrs.contains(&nr)) {
                    EPERM
                } else if allow.contains(&nr) || (admin && admin_nrs.contains(&nr)) {
                    RET_ALLOW
                } else {
                    ENOSYS
                };
                assert_eq!(eval(f, AUDIT_ARCH, nr, [0, 0]), want, "nr {nr}, admin {admin}");
            }
        }
        // Short enough to install (and JIT) in next to no time.
        const { assert!(LEN < 200 && LEN_NO_ADMIN < 200) };
    }

    #[test]
    fn lists_do_not_overlap() {
        let allow: Vec<u32> = [ALLOW, ALLOW_NEW, ALLOW_ARCH, ALLOW_ARCH_NEW].concat().iter().map(|s| s.1).collect();
        for &(_, nr) in [DENY, DENY_ARCH, ADMIN].concat().iter() {
            assert!(!allow.contains(&nr), "nr {nr} is both allowed and refused");
        }
        let mut sorted = allow.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), allow.len(), "a call is listed twice");
    }
}

//! The default seccomp filter, built at compile time by a `const fn`: no
//! filter is compiled at start (systemd-nspawn spends most of its start
//! doing that), installing it is one `prctl`.
//!
//! A deny list in the spirit of systemd-nspawn's and docker's defaults:
//! calls that reach kernel-global state no namespace isolates (modules,
//! kexec, swap, the clock, the keyring, BPF, perf, raw I/O ports, the
//! syslog, io_uring) fail with `EPERM`, and so do the ioctls that push
//! input into a terminal (TIOCSTI, TIOCLINUX). Calls from a foreign ABI (i386 or x32 on
//! x86_64) fail with `ENOSYS`, since the deny list names native numbers
//! only. Written by hand: libseccomp would add a C dependency and a run-time
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
const RET_K: u16 = 0x06;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;
/// x32 syscalls have this bit set on x86_64; nothing else reaches it.
const X32_BIT: u32 = 0x4000_0000;

macro_rules! nrs {
    ($($n:ident),* $(,)?) => { &[$(libc::$n as u32),*] };
}

#[cfg(target_arch = "x86_64")]
const ARCH_ONLY: &[u32] = nrs![SYS_iopl, SYS_ioperm, SYS_uselib, SYS__sysctl];
#[cfg(target_arch = "aarch64")]
const ARCH_ONLY: &[u32] = &[];

const COMMON: &[u32] = nrs![
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
    SYS_lookup_dcookie,
    SYS_settimeofday,
    SYS_clock_settime,
    SYS_clock_adjtime,
    SYS_adjtimex,
    SYS_bpf,
    SYS_perf_event_open,
    SYS_userfaultfd,
    SYS_syslog,
    SYS_nfsservctl,
    // io_uring runs I/O outside the filter's sight (moby blocks it too).
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
];

/// ioctls refused whatever the descriptor: pushing input into a terminal
/// (TIOCSTI) or console (TIOCLINUX) is how a process that holds a
/// terminal types commands into the shell that owns it.
const IOCTL_DENY: [u32; 2] = [libc::TIOCSTI as u32, 0x541C /* TIOCLINUX */];

const N: usize = COMMON.len() + ARCH_ONLY.len();
/// Where the denied calls' compares start.
const LIST: usize = 10;
/// Instructions: arch load + check + foreign-ABI return, nr load, x32
/// check, the ioctl block (5), one compare per denied call, allow, deny.
pub const LEN: usize = N + LIST + 2;
/// `seccomp_data.args[1]`, low word (little-endian).
const OFFSET_ARG1: u32 = 24;

const fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter { code, jt: 0, jf: 0, k }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

const fn build() -> [SockFilter; LEN] {
    let mut f = [stmt(RET_K, RET_ALLOW); LEN];
    f[0] = stmt(LD_W_ABS, OFFSET_ARCH);
    f[1] = jump(JEQ_K, AUDIT_ARCH, 1, 0);
    f[2] = stmt(RET_K, RET_ERRNO | libc::ENOSYS as u32);
    f[3] = stmt(LD_W_ABS, OFFSET_NR);
    // deny is at LEN-1; from instruction k a jump of j lands at k+1+j.
    f[4] = jump(JGE_K, X32_BIT, (LEN - 1 - 5) as u8, 0);
    // ioctl: the request number decides; the kernel reads it as 32 bits.
    f[5] = jump(JEQ_K, libc::SYS_ioctl as u32, 0, (LIST - 6) as u8);
    f[6] = stmt(LD_W_ABS, OFFSET_ARG1);
    f[7] = jump(JEQ_K, IOCTL_DENY[0], (LEN - 1 - 8) as u8, 0);
    f[8] = jump(JEQ_K, IOCTL_DENY[1], (LEN - 1 - 9) as u8, 0);
    f[9] = stmt(RET_K, RET_ALLOW);
    let mut i = 0;
    while i < N {
        let nr = if i < COMMON.len() { COMMON[i] } else { ARCH_ONLY[i - COMMON.len()] };
        let k = LIST + i;
        f[k] = jump(JEQ_K, nr, (LEN - 1 - (k + 1)) as u8, 0);
        i += 1;
    }
    f[LEN - 2] = stmt(RET_K, RET_ALLOW);
    f[LEN - 1] = stmt(RET_K, RET_ERRNO | libc::EPERM as u32);
    f
}

// Jump offsets are u8: the program must stay short.
const _: () = assert!(LEN < 255);

/// The filter, ready to hand to `prctl(PR_SET_SECCOMP)`.
pub static FILTER: [SockFilter; LEN] = build();

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the filter on (arch, nr) like the kernel would.
    fn eval(arch: u32, nr: u32) -> u32 {
        eval_args(arch, nr, 0)
    }

    fn eval_args(arch: u32, nr: u32, arg1: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let ins = FILTER[pc];
            match ins.code {
                LD_W_ABS => {
                    acc = match ins.k {
                        OFFSET_ARCH => arch,
                        OFFSET_NR => nr,
                        OFFSET_ARG1 => arg1,
                        k => panic!("load of offset {k}"),
                    }
                }
                JEQ_K => {
                    pc += if acc == ins.k { ins.jt as usize } else { ins.jf as usize };
                }
                JGE_K => {
                    pc += if acc >= ins.k { ins.jt as usize } else { ins.jf as usize };
                }
                RET_K => return ins.k,
                _ => panic!("bad opcode"),
            }
            pc += 1;
        }
    }

    #[test]
    fn denies_what_it_lists_and_allows_the_rest() {
        assert_eq!(eval(AUDIT_ARCH, libc::SYS_kexec_load as u32), RET_ERRNO | libc::EPERM as u32);
        assert_eq!(eval(AUDIT_ARCH, libc::SYS_keyctl as u32), RET_ERRNO | libc::EPERM as u32);
        assert_eq!(eval(AUDIT_ARCH, libc::SYS_nfsservctl as u32), RET_ERRNO | libc::EPERM as u32);
        assert_eq!(eval(AUDIT_ARCH, libc::SYS_read as u32), RET_ALLOW);
        assert_eq!(eval(AUDIT_ARCH, libc::SYS_execve as u32), RET_ALLOW);
        assert_eq!(eval(AUDIT_ARCH, libc::SYS_mount as u32), RET_ALLOW);
        assert_eq!(eval(AUDIT_ARCH, X32_BIT | 1), RET_ERRNO | libc::EPERM as u32);
        assert_eq!(eval(0x4000_0003, 1), RET_ERRNO | libc::ENOSYS as u32);
        assert_eq!(eval(AUDIT_ARCH, libc::SYS_io_uring_setup as u32), RET_ERRNO | libc::EPERM as u32);
    }

    #[test]
    fn terminal_injection_ioctls_are_refused_and_others_pass() {
        let ioctl = libc::SYS_ioctl as u32;
        let deny = RET_ERRNO | libc::EPERM as u32;
        assert_eq!(eval_args(AUDIT_ARCH, ioctl, libc::TIOCSTI as u32), deny);
        assert_eq!(eval_args(AUDIT_ARCH, ioctl, 0x541C), deny);
        assert_eq!(eval_args(AUDIT_ARCH, ioctl, libc::TIOCGWINSZ as u32), RET_ALLOW);
        assert_eq!(eval_args(AUDIT_ARCH, ioctl, libc::TCGETS as u32), RET_ALLOW);
        // The request number is the syscall's second argument, not its nr.
        assert_eq!(eval_args(AUDIT_ARCH, libc::SYS_read as u32, libc::TIOCSTI as u32), RET_ALLOW);
    }
}

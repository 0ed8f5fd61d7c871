//! The device allow-list (SECURITY.md, "devices"): a container opens only
//! the nodes berth gives it (null, zero, full, random, urandom, tty,
//! console, ptmx and its own ptys) and those asked for with `--device`.
//! Mounts already keep image and mknod'ed nodes from opening (`nodev`);
//! this is the second wall, which also holds for a mount the container
//! manages to make itself.
//!
//! Enforced by a cgroup device program (BPF_PROG_TYPE_CGROUP_DEVICE)
//! attached to the container's cgroup on the unified hierarchy, which the
//! kernel runs on pure v2 and hybrid hosts alike (it follows the task's
//! cgroup2 membership); without a unified hierarchy, by the v1 `devices`
//! controller. The program is generated here from the rules, as runc's
//! `devicefilter` does: no BPF toolchain or crate is needed for a dozen
//! compares, and nothing is compiled at run time but the kernel's verify.

/// Access bits, as the kernel's `bpf_cgroup_dev_ctx.access_type` has them
/// (upper 16 bits).
pub const MKNOD: u32 = 1;
pub const READ: u32 = 2;
pub const WRITE: u32 = 4;

/// Device types (lower 16 bits of `access_type`).
const TYPE_BLOCK: u32 = 1;
const TYPE_CHAR: u32 = 2;

/// One allowed device (or class, with wildcards).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `b'c'`, `b'b'`, or `b'a'` for both.
    pub kind: u8,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// MKNOD | READ | WRITE bits.
    pub access: u32,
}

impl Rule {
    const fn char(major: u32, minor: Option<u32>, access: u32) -> Rule {
        Rule { kind: b'c', major: Some(major), minor, access }
    }

    /// The v1 `devices.allow` lines (`c 1:3 rwm`). A rule for every kind
    /// is one line per kind: an `a` line there means "allow everything",
    /// whatever its access letters.
    pub fn v1_lines(&self) -> Vec<String> {
        let n = |v: Option<u32>| v.map(|x| x.to_string()).unwrap_or_else(|| "*".into());
        let kinds: &[u8] = if self.kind == b'a' { b"cb" } else { std::slice::from_ref(&self.kind) };
        kinds
            .iter()
            .map(|k| format!("{} {}:{} {}", *k as char, n(self.major), n(self.minor), access_string(self.access)))
            .collect()
    }
}

/// `rwm` letters for access bits.
pub fn access_string(a: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
        if a & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Parses `rwm` letters (any subset, at least one).
pub fn parse_access(s: &str) -> Result<u32, String> {
    let mut a = 0;
    for c in s.chars() {
        a |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => return Err(format!("invalid device access {s:?}: use letters from rwm")),
        };
    }
    if a == 0 {
        return Err("empty device access: use letters from rwm".into());
    }
    Ok(a)
}

/// What every container may use: the nodes berth binds into /dev, the
/// console, ptmx and ptys; making nodes (mknod) of any kind, which `nodev`
/// mounts keep from opening.
pub fn defaults() -> Vec<Rule> {
    let rw = READ | WRITE;
    vec![
        Rule { kind: b'a', major: None, minor: None, access: MKNOD },
        Rule::char(1, Some(3), rw),
        Rule::char(1, Some(5), rw),
        Rule::char(1, Some(7), rw),
        Rule::char(1, Some(8), rw),
        Rule::char(1, Some(9), rw),
        Rule::char(5, Some(0), rw),
        Rule::char(5, Some(1), rw),
        Rule::char(5, Some(2), rw),
        Rule::char(136, None, rw),
    ]
}

/// One eBPF instruction (`struct bpf_insn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// dst (low nibble) and src (high nibble) registers.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV64_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: dst | (src << 4), off, imm }
}

/// The device program for `rules`: returns 1 (allow) for the first rule
/// that matches type, major, minor and covers the access asked, else 0.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor (ctx in r1).
    let mut p = vec![
        ins(LDX_W, 2, 1, 0, 0),
        ins(AND32_K, 2, 0, 0, 0xffff),
        ins(LDX_W, 3, 1, 0, 0),
        ins(RSH32_K, 3, 0, 0, 16),
        ins(LDX_W, 4, 1, 4, 0),
        ins(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules {
        let mut block = Vec::new();
        match r.kind {
            b'c' => block.push(ins(JNE_K, 2, 0, 0, TYPE_CHAR as i32)),
            b'b' => block.push(ins(JNE_K, 2, 0, 0, TYPE_BLOCK as i32)),
            _ => {}
        }
        // The access asked must lie within the rule's: (r3 & !access) == 0.
        block.push(ins(MOV64_X, 1, 3, 0, 0));
        block.push(ins(AND32_K, 1, 0, 0, !(r.access as i32)));
        block.push(ins(JNE_K, 1, 0, 0, 0));
        if let Some(m) = r.major {
            block.push(ins(JNE_K, 4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(ins(JNE_K, 5, 0, 0, m as i32));
        }
        block.push(ins(MOV64_K, 0, 0, 0, 1));
        block.push(ins(EXIT, 0, 0, 0, 0));
        // Every JNE leaves the block: it lands just past its end.
        let len = block.len();
        for (i, b) in block.iter_mut().enumerate() {
            if b.code == JNE_K {
                b.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(ins(MOV64_K, 0, 0, 0, 0));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `p` as the kernel would on (type, access, major, minor).
    fn run(p: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [kind | (access << 16), major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            match i.code {
                LDX_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = ctx[i.off as usize / 4] as u64;
                }
                AND32_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                RSH32_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                MOV64_X => r[dst] = r[src],
                MOV64_K => r[dst] = i.imm as i64 as u64,
                JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                EXIT => return r[0],
                c => panic!("opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn the_default_program_allows_berths_nodes_and_nothing_else() {
        let p = program(&defaults());
        let rw = READ | WRITE;
        assert_eq!(run(&p, TYPE_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, TYPE_CHAR, READ, 1, 9), 1, "/dev/urandom");
        assert_eq!(run(&p, TYPE_CHAR, rw, 136, 7), 1, "a pty");
        assert_eq!(run(&p, TYPE_CHAR, rw, 10, 237), 0, "loop-control");
        assert_eq!(run(&p, TYPE_BLOCK, READ, 8, 0), 0, "sda");
        assert_eq!(run(&p, TYPE_CHAR, rw, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&p, TYPE_BLOCK, MKNOD, 8, 0), 1, "mknod alone is allowed");
        assert_eq!(run(&p, TYPE_CHAR, MKNOD | READ, 10, 237), 0, "but not with read");
    }

    #[test]
    fn an_added_device_gets_exactly_its_access() {
        let mut rules = defaults();
        rules.push(Rule { kind: b'c', major: Some(10), minor: Some(200), access: READ });
        let p = program(&rules);
        assert_eq!(run(&p, TYPE_CHAR, READ, 10, 200), 1);
        assert_eq!(run(&p, TYPE_CHAR, READ | WRITE, 10, 200), 0);
        assert_eq!(run(&p, TYPE_BLOCK, READ, 10, 200), 0, "a block device with the same numbers");
        assert_eq!(rules[10].v1_lines(), ["c 10:200 r"]);
        assert_eq!(defaults()[0].v1_lines(), ["c *:* m", "b *:* m"]);
        assert_eq!(parse_access("rw"), Ok(READ | WRITE));
        assert!(parse_access("x").is_err() && parse_access("").is_err());
    }
}

//! Two read-only nf_tables lookups over `NETLINK_NETFILTER`, for the start
//! of a run on a berth network: whether the network's NAT table is there
//! and whether its link's address bindings are ([`super::bind`]). When
//! both are, the run needs no `nft` at all; when either is not (the
//! address's first run, or a ruleset flushed since), `nft` adds them.
//!
//! Written by hand: the `nftables` crate drives the `nft` program (a
//! process, a few milliseconds), and no maintained crate speaks
//! nfnetlink's get requests; each one here is a header, a `nfgenmsg` and
//! two or three attributes, answered by one object or an errno, in well
//! under a millisecond and without a commit.

use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETSETELEM: u16 = 13;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 2;
const NFPROTO_INET: u8 = 1;
const NFPROTO_BRIDGE: u8 = 7;
const NLA_F_NESTED: u16 = 0x8000;
/// IFNAMSIZ: an `ifname` set key is the name, NUL-padded to it.
const IFNAMSIZ: usize = 16;

fn attr(buf: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// One request (`msg_type` of nf_tables for `family`, attributes
/// `attrs`); Ok(true) when the kernel found the object, Ok(false) on
/// ENOENT.
fn get(socket: &Socket, seq: u32, msg_type: u16, family: u8, attrs: &[u8]) -> io::Result<bool> {
    let mut buf = Vec::with_capacity(64);
    let len = 16 + 4 + attrs.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    // nfgenmsg: family, version 0, resource id 0 (big endian).
    buf.extend_from_slice(&[family, 0, 0, 0]);
    buf.extend_from_slice(attrs);
    socket.send(&buf, 0)?;
    let mut reply = vec![0u8; 8192];
    loop {
        let n = socket.recv(&mut &mut reply[..], 0)?;
        let mut at = 0;
        while at + 16 <= n {
            let mlen = u32::from_ne_bytes(reply[at..at + 4].try_into().unwrap_or_default()) as usize;
            let mtype = u16::from_ne_bytes(reply[at + 4..at + 6].try_into().unwrap_or_default());
            let mseq = u32::from_ne_bytes(reply[at + 8..at + 12].try_into().unwrap_or_default());
            if mlen < 16 || at + mlen > n {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short netlink message"));
            }
            if mseq == seq && mtype == NLMSG_ERROR && mlen >= 20 {
                let err = i32::from_ne_bytes(reply[at + 16..at + 20].try_into().unwrap_or_default());
                return match -err {
                    0 => Ok(true),
                    libc::ENOENT => Ok(false),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
            at += mlen.next_multiple_of(4);
        }
    }
}

/// Whether table `inet NAT_TABLE` exists and `host_if` is in set
/// `guarded` of table `bridge BIND_TABLE`.
pub fn in_place(nat_table: &str, bind_table: &str, host_if: &str) -> io::Result<bool> {
    if host_if.len() >= IFNAMSIZ {
        return Ok(false);
    }
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut table = Vec::new();
    attr(&mut table, 1 /* NFTA_TABLE_NAME */, &cstr(nat_table));
    if !get(&socket, 1, NFT_MSG_GETTABLE, NFPROTO_INET, &table)? {
        return Ok(false);
    }
    let mut key = host_if.as_bytes().to_vec();
    key.resize(IFNAMSIZ, 0);
    let mut value = Vec::new();
    attr(&mut value, 1 /* NFTA_DATA_VALUE */, &key);
    let mut elem_key = Vec::new();
    attr(&mut elem_key, NLA_F_NESTED | 1 /* NFTA_SET_ELEM_KEY */, &value);
    let mut elem = Vec::new();
    attr(&mut elem, NLA_F_NESTED | 1 /* NFTA_LIST_ELEM */, &elem_key);
    let mut attrs = Vec::new();
    attr(&mut attrs, 1 /* NFTA_SET_ELEM_LIST_TABLE */, &cstr(bind_table));
    attr(&mut attrs, 2 /* NFTA_SET_ELEM_LIST_SET */, &cstr("guarded"));
    attr(&mut attrs, NLA_F_NESTED | 3 /* NFTA_SET_ELEM_LIST_ELEMENTS */, &elem);
    get(&socket, 2, NFT_MSG_GETSETELEM, NFPROTO_BRIDGE, &attrs)
}

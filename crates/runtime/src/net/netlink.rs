//! The `NETLINK_ROUTE` socket and its synchronous exchange: one request
//! out, replies read until the kernel's ack, error or end of dump.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Receive buffer: the kernel sends dump parts of at most 32 KiB
/// (NLMSG_GOODSIZE is under a page unless the reader's buffer is larger).
const RECV_BUF: usize = 64 * 1024;

/// How often a dump the kernel reports as interrupted (the table changed
/// while it was read) is started again before giving up.
const DUMP_RETRIES: usize = 5;

/// A failed netlink operation, naming what it did (interface, address).
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The kernel or the socket refused; `source` carries the errno.
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    /// A request berth will not send, or a reply it cannot use.
    #[error("{what}: {detail}")]
    Invalid { what: String, detail: String },
}

impl NetlinkError {
    pub(super) fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> NetlinkError {
        move |source| NetlinkError::Io { what: what.into(), source }
    }

    pub(super) fn invalid(what: impl Into<String>, detail: impl Into<String>) -> NetlinkError {
        NetlinkError::Invalid { what: what.into(), detail: detail.into() }
    }

    /// The errno the kernel answered with, if it was that kind of failure.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Io { source, .. } => source.raw_os_error(),
            NetlinkError::Invalid { .. } => None,
        }
    }
}

/// A `NETLINK_ROUTE` socket bound in one network namespace; every
/// operation acts on that namespace.
pub struct Netlink {
    socket: Socket,
    seq: Cell<u32>,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink").field("fd", &self.socket.as_fd()).finish()
    }
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> Result<Netlink, NetlinkError> {
        Self::socket().map_err(NetlinkError::io("opening a netlink socket"))
    }

    /// A socket in the network namespace `netns`: made by a short-lived
    /// thread that entered it (a socket keeps the namespace it was created
    /// in); the calling thread's namespace does not change.
    pub fn open_in(netns: BorrowedFd<'_>) -> Result<Netlink, NetlinkError> {
        let what = "opening a netlink socket in another network namespace";
        super::ns::run_in(netns, Self::socket).and_then(|r| r).map_err(NetlinkError::io(what))
    }

    fn socket() -> io::Result<Netlink> {
        // netlink-sys makes it SOCK_CLOEXEC: it never reaches a container.
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        // Only the kernel (port 0) may talk to us.
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { socket, seq: Cell::new(0) })
    }

    /// Sends `msg` with `NLM_F_ACK` and `flags`, and returns the replies
    /// that came before the kernel's ack (none for most changes, the object
    /// for a get). A NACK becomes its errno.
    pub(super) fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        let (replies, _) = self.exchange(msg, NLM_F_ACK | flags)?;
        Ok(replies)
    }

    /// Dumps with `msg` as the filter; started again if the kernel says
    /// the dump was interrupted by a change.
    pub(super) fn dump(&self, msg: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_RETRIES {
            let (replies, interrupted) = self.exchange(msg.clone(), NLM_F_DUMP)?;
            if !interrupted {
                return Ok(replies);
            }
        }
        Err(io::Error::from_raw_os_error(libc::EINTR))
    }

    fn exchange(&self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<(Vec<RouteNetlinkMessage>, bool)> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(msg));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        if self.socket.send(&out, 0)? != out.len() {
            return Err(io::Error::other("short netlink send"));
        }

        let mut replies = Vec::new();
        let mut interrupted = false;
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        loop {
            buf.clear();
            // MSG_TRUNC: the datagram's real length, to catch truncation.
            let n = match self.socket.recv(&mut buf, libc::MSG_TRUNC) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            if n > buf.len() {
                return Err(invalid_data(format!("netlink reply of {n} bytes truncated")));
            }
            let mut off = 0;
            while off < n {
                let part = &buf[off..n];
                let header = NetlinkBuffer::new_checked(part).map_err(|e| invalid_data(e.to_string()))?;
                let len = header.length() as usize;
                let (reply_seq, reply_flags) = (header.sequence_number(), header.flags());
                off += len.next_multiple_of(4).max(4);
                if reply_seq != seq {
                    continue; // a late reply to an earlier request
                }
                let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&part[..len])
                    .map_err(|e| invalid_data(e.to_string()))?;
                interrupted |= reply_flags & NLM_F_DUMP_INTR != 0;
                match message.payload {
                    NetlinkPayload::InnerMessage(m) => replies.push(m),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok((replies, interrupted)),
                        Some(code) => return Err(io::Error::from_raw_os_error(code.get().saturating_abs())),
                    },
                    NetlinkPayload::Done(d) if d.code != 0 => {
                        return Err(io::Error::from_raw_os_error(d.code.saturating_abs()))
                    }
                    NetlinkPayload::Done(_) => return Ok((replies, interrupted)),
                    NetlinkPayload::Overrun(_) => return Err(io::Error::from_raw_os_error(libc::ENOBUFS)),
                    _ => {}
                }
            }
        }
    }
}

fn invalid_data(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

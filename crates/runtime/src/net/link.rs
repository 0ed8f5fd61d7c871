//! Links: looking one up, making a bridge or a veth pair whose peer starts
//! life in another namespace, enslaving, setting up, deleting.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoVeth, IpVlanMode, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Netlink, NetlinkError, DEFAULT_MTU, MAX_IFNAME, PEER_NAME};

impl Netlink {
    /// The index of the link called `name`.
    pub fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        Ok(self.get_link(name)?.header.index)
    }

    fn get_link(&self, name: &str) -> Result<LinkMessage, NetlinkError> {
        let what = format!("looking up link {name}");
        check_name(&what, name)?;
        let replies = self.request(by_name(RouteNetlinkMessage::GetLink, name), 0).map_err(NetlinkError::io(&what))?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| NetlinkError::invalid(what, "no link in the kernel's reply"))
    }

    /// Makes the bridge `name` (MTU [`DEFAULT_MTU`]) unless it exists;
    /// whether it was made. A link of that name that is not a bridge is an
    /// error.
    pub fn create_bridge(&self, name: &str) -> Result<bool, NetlinkError> {
        let what = format!("creating bridge {name}");
        check_name(&what, name)?;
        let mut link = LinkMessage::default();
        link.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Mtu(DEFAULT_MTU),
            LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]),
        ];
        match self.request(RouteNetlinkMessage::NewLink(link), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let existing = self.get_link(name)?;
                if kind(&existing) == Some(&InfoKind::Bridge) {
                    Ok(false)
                } else {
                    Err(NetlinkError::invalid(what, "a link of that name exists and is not a bridge"))
                }
            }
            Err(e) => Err(NetlinkError::io(what)(e)),
        }
    }

    /// Makes a veth pair: `host` in this socket's namespace and its peer
    /// [`PEER_NAME`] created directly inside `netns` (so the peer's name
    /// never exists on the host), both with MTU [`DEFAULT_MTU`], both down.
    pub fn create_veth(
        &self,
        host: &str,
        netns: BorrowedFd<'_>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<(), NetlinkError> {
        let what = format!("creating veth {host} with peer {PEER_NAME} in another network namespace");
        check_name(&what, host)?;
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName(PEER_NAME.into()),
            LinkAttribute::Mtu(DEFAULT_MTU),
            // The kernel reads the descriptor while it handles this request.
            LinkAttribute::NetNsFd(netns.as_raw_fd()),
        ];
        if let Some(mac) = peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        let mut link = LinkMessage::default();
        link.attributes = vec![
            LinkAttribute::IfName(host.into()),
            LinkAttribute::Mtu(DEFAULT_MTU),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]),
        ];
        self.request(RouteNetlinkMessage::NewLink(link), NLM_F_CREATE | NLM_F_EXCL).map_err(NetlinkError::io(what))?;
        Ok(())
    }

    /// Makes `name`, a macvlan (bridge mode: its siblings reach each other)
    /// or an ipvlan (L2) on the host's link `parent`, directly inside
    /// `netns`, down; its MTU is the parent's.
    pub fn create_vlan_in(
        &self,
        kind: crate::spec::LinkKind,
        parent: &str,
        name: &str,
        netns: BorrowedFd<'_>,
    ) -> Result<(), NetlinkError> {
        let parent_index = self.link_index(parent)?;
        let what = format!("creating {kind} {name} on {parent} in another network namespace");
        check_name(&what, name)?;
        let info = match kind {
            crate::spec::LinkKind::Macvlan => vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])),
            ],
            crate::spec::LinkKind::Ipvlan => vec![
                LinkInfo::Kind(InfoKind::IpVlan),
                LinkInfo::Data(InfoData::IpVlan(vec![InfoIpVlan::Mode(IpVlanMode::L2)])),
            ],
        };
        let mut link = LinkMessage::default();
        link.attributes = vec![
            LinkAttribute::IfName(name.into()),
            LinkAttribute::Link(parent_index),
            LinkAttribute::NetNsFd(netns.as_raw_fd()),
            LinkAttribute::LinkInfo(info),
        ];
        match self.request(RouteNetlinkMessage::NewLink(link), NLM_F_CREATE | NLM_F_EXCL) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Err(NetlinkError::invalid(
                what,
                format!("this kernel has no {kind} driver (CONFIG_{})", kind.to_string().to_uppercase()),
            )),
            Err(e) => Err(NetlinkError::io(what)(e)),
        }
    }

    /// Enslaves `link` to the bridge `bridge`.
    pub fn set_master(&self, link: &str, bridge: &str) -> Result<(), NetlinkError> {
        let bridge_index = self.link_index(bridge)?;
        let what = format!("adding {link} to bridge {bridge}");
        check_name(&what, link)?;
        let mut msg = by_name_message(link);
        msg.attributes.push(LinkAttribute::Controller(bridge_index));
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map_err(NetlinkError::io(what))?;
        Ok(())
    }

    /// Sets the link `name` up.
    pub fn set_up(&self, name: &str) -> Result<(), NetlinkError> {
        let what = format!("setting link {name} up");
        check_name(&what, name)?;
        let mut msg = by_name_message(name);
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0).map_err(NetlinkError::io(what))?;
        Ok(())
    }

    /// Deletes the link `name` (a veth takes its peer with it); whether it
    /// existed. One already gone (ENODEV) is not an error.
    pub fn delete_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let what = format!("deleting link {name}");
        check_name(&what, name)?;
        match self.request(by_name(RouteNetlinkMessage::DelLink, name), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(NetlinkError::io(what)(e)),
        }
    }

    /// Deletes the link with index `index`, whatever it is called now
    /// (another link may have taken its name since); whether it existed.
    pub fn delete_link_index(&self, index: u32) -> Result<bool, NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        match self.request(RouteNetlinkMessage::DelLink(msg), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(NetlinkError::io(format!("deleting link #{index}"))(e)),
        }
    }
}

/// A link message that names its link (index 0: the kernel looks the name up).
fn by_name_message(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.into()));
    msg
}

fn by_name(make: fn(LinkMessage) -> RouteNetlinkMessage, name: &str) -> RouteNetlinkMessage {
    make(by_name_message(name))
}

fn kind(link: &LinkMessage) -> Option<&InfoKind> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k),
            _ => None,
        }),
        _ => None,
    })
}

/// Interface names: 1 to 15 bytes, no `/`, whitespace, `:` or NUL, not `.`
/// or `..` (the kernel's dev_valid_name), checked here for a clear message.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), NetlinkError> {
    let bad = name.is_empty()
        || name.len() > MAX_IFNAME
        || name == "."
        || name == ".."
        || name.bytes().any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if bad {
        return Err(NetlinkError::invalid(what, format!("invalid interface name {name:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn net_interface_names() {
        for good in ["eth0", "host0", "vb-abcdefghijk", "a", "br.berth"] {
            assert!(check_name("t", good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "a:b", ".", "..", "abcdefghijklmnop", "nul\0"] {
            assert!(check_name("t", bad).is_err(), "{bad:?}");
        }
    }
}

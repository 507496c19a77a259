//! Link state changes (`RTMGRP_LINK`): an interface going up or down, or losing its carrier.
//! A small separate socket, so that multicast events never mix with the answers of
//! [`super::netlink::Netlink`]. pharosd tells the core when one of its public interfaces
//! loses or regains carrier ([`pharos_core::Event::Carrier`]).

use super::netlink::next_message;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// One interface's state, from an `RTM_NEWLINK` or `RTM_DELLINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkEvent {
    /// Interface index.
    pub ifindex: u32,
    /// Interface name (empty if the kernel did not say).
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Has a carrier (`IFF_LOWER_UP`): a cable, or for a veth, a peer that is up.
    pub carrier: bool,
    /// The interface was deleted.
    pub removed: bool,
}

/// A non-blocking subscription to link changes; register it with mio through `SourceFd`.
pub struct LinkWatch {
    socket: Socket,
    rbuf: Vec<u8>,
}

impl LinkWatch {
    /// Subscribes to link changes in the current network namespace, and asks for a dump of every
    /// link so that the first events give the current state.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, libc::RTMGRP_LINK as u32))?;
        socket.set_non_blocking(true)?;
        let mut nl = NetlinkMessage::from(RouteNetlinkMessage::GetLink(LinkMessage::default()));
        nl.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        nl.header.sequence_number = 1;
        nl.finalize();
        let mut buf = vec![0; nl.buffer_len()];
        nl.serialize(&mut buf);
        socket.send(&buf, 0)?;
        Ok(LinkWatch {
            socket,
            rbuf: vec![0; 64 * 1024],
        })
    }

    /// Every event queued so far (call when readable). Unreadable messages are skipped.
    pub fn receive(&mut self) -> io::Result<Vec<LinkEvent>> {
        let mut events = Vec::new();
        loop {
            // SAFETY: recv into our own buffer of rbuf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.socket.as_raw_fd(),
                    self.rbuf.as_mut_ptr().cast(),
                    self.rbuf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(events),
                    // Events were lost; the caller sees the newest state with the next ones.
                    Some(libc::EINTR) | Some(libc::ENOBUFS) => continue,
                    _ => return Err(e),
                }
            }
            let buf = &self.rbuf[..n as usize];
            let mut off = 0;
            while let Some((msg, next)) = next_message(buf, off) {
                if let Some(ev) = link_event(msg) {
                    events.push(ev);
                }
                off = next;
            }
        }
    }
}

fn link_event(msg: &[u8]) -> Option<LinkEvent> {
    let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg).ok()?;
    let (m, removed) = match parsed.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => (m, false),
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => (m, true),
        _ => return None,
    };
    let name = m
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })
        .unwrap_or_default();
    Some(LinkEvent {
        ifindex: m.header.index,
        name,
        up: m.header.flags.contains(LinkFlags::Up),
        carrier: m.header.flags.contains(LinkFlags::LowerUp),
        removed,
    })
}

impl AsRawFd for LinkWatch {
    /// Register this with mio as `SourceFd(&x.as_raw_fd())`, for readability.
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

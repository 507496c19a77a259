//! Interface identity: name to index and back, and the hardware (MAC) address.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The index of the interface called `name` (`if_nametoindex`).
pub fn index(name: &str) -> io::Result<u32> {
    let c =
        CString::new(name).map_err(|_| invalid(format!("interface name {name:?} has a NUL")))?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("interface {name:?}: {e}")));
    }
    Ok(idx)
}

/// The name of interface `ifindex` (`if_indextoname`).
pub fn name(ifindex: u32) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("interface index {ifindex}: {e}"),
        ));
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Ok(s.to_string_lossy().into_owned())
}

/// The Ethernet address of interface `ifindex` (`SIOCGIFHWADDR`). An error for interfaces
/// without one (loopback, tunnels): nothing can be announced there.
pub fn mac(ifindex: u32) -> io::Result<[u8; 6]> {
    let ifname = name(ifindex)?;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is a plain C struct (a name and a union); all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(ifname.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr of the ifreq we pass.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("hardware address of {ifname}: {e}"),
        ));
    }
    // SAFETY: after a successful SIOCGIFHWADDR the union holds ifr_hwaddr.
    let hw = unsafe { req.ifr_ifru.ifru_hwaddr };
    if hw.sa_family != libc::ARPHRD_ETHER {
        return Err(invalid(format!(
            "{ifname} is not an Ethernet interface (hardware type {})",
            hw.sa_family
        )));
    }
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Sets `net.ipv4.conf.IFACE.promote_secondaries=1` for interface `ifindex` (in the current
/// network namespace), as CTDB does on its public interfaces. Without it, removing an IPv4
/// address that is the *primary* of its subnet on the interface (the first one added) makes the
/// kernel remove every *secondary* address of that subnet with it: other public addresses, or
/// someone else's. With it, a secondary is promoted instead. Call it for every public interface
/// before removing anything there; the guardian calls it before fencing. No write when already set.
pub fn promote_secondaries(ifindex: u32) -> io::Result<()> {
    let ifname = name(ifindex)?;
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/promote_secondaries");
    if std::fs::read_to_string(&path)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(&path, "1\n").map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))
}

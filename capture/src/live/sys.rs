//! Every `unsafe` call of the crate, each behind a small safe function: the `PACKET_FANOUT`
//! `setsockopt`, `poll(2)`, and the user/group calls of the privilege drop. `libc` has no safe
//! wrapper for them. The crate denies `unsafe_code`; this module alone is allowed it (see
//! `live/mod.rs`), and every block carries a `// SAFETY:` comment (enforced by clippy below).
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::multiple_unsafe_ops_per_block)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Linux `PACKET_FANOUT` socket option and modes (not exported by `libc`).
const PACKET_FANOUT: libc::c_int = 18;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
/// Where the fanout mode and flags sit in the option value (the group id is the low 16 bits).
const PACKET_FANOUT_MODE_SHIFT: u32 = 16;
/// First `getpwnam_r` buffer size.
const PW_BUF: usize = 1024;
/// Growth factor of the `getpwnam_r` buffer after `ERANGE`.
const PW_BUF_GROWTH: usize = 4;
/// Largest `getpwnam_r` buffer tried before giving up.
const MAX_PW_BUF: usize = 1 << 20;

pub use libc::{gid_t, uid_t};

/// Joins the packet socket `fd` to fanout group `group` (low 16 bits), by symmetric flow hash,
/// with the kernel reassembling IP fragments first.
pub fn join_fanout(fd: BorrowedFd<'_>, group: u32) -> std::io::Result<()> {
    let val: libc::c_int = (group
        | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << PACKET_FANOUT_MODE_SHIFT))
        as libc::c_int;
    // SAFETY: `fd` is an open descriptor borrowed for the call; `val` is a valid c_int whose
    // size is passed exactly, and the kernel only reads it during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_FANOUT,
            &val as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable, at most `ms` milliseconds (EINTR counts as a wake-up).
pub fn wait_readable(fd: BorrowedFd<'_>, ms: i32) -> Result<(), String> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one initialised pollfd, valid for reads and writes during the call, and
    // nfds = 1 matches it.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("poll: {e}"));
        }
    } else if pfd.revents & libc::POLLNVAL != 0 {
        return Err("poll: the capture fd is no longer valid".to_string());
    }
    Ok(())
}

/// uid and primary gid of `name`.
pub fn lookup_user(name: &str) -> Result<(uid_t, gid_t), String> {
    let cname = CString::new(name).map_err(|_| "the name contains a NUL byte".to_string())?;
    let mut len = PW_BUF;
    loop {
        // SAFETY: `passwd` is plain data (integers and raw pointers): all-zero is a valid value,
        // and it is only read after getpwnam_r filled it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf: Vec<libc::c_char> = vec![0; len];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated; `pwd`, `buf` (with its exact length) and `result`
        // are valid for writes for the whole call; the strings getpwnam_r stores in `buf` are
        // not used after `buf` is dropped (only the integer ids are kept).
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && len < MAX_PW_BUF {
            len *= PW_BUF_GROWTH;
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "getpwnam_r: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        if result.is_null() {
            return Err("no such user".to_string());
        }
        return Ok((pwd.pw_uid, pwd.pw_gid));
    }
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Replaces the supplementary groups by `gid` alone.
pub fn set_groups_to(gid: gid_t) -> Result<(), String> {
    let groups = [gid];
    // SAFETY: `groups` is an array of exactly 1 gid_t, read by the kernel during the call only.
    if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
        return Err(os_err("setgroups"));
    }
    Ok(())
}

/// `setgid(2)` (glibc applies it to every thread).
pub fn set_gid(gid: gid_t) -> Result<(), String> {
    // SAFETY: plain syscall wrapper taking an integer, no memory involved.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err(os_err("setgid"));
    }
    Ok(())
}

/// `setuid(2)` (glibc applies it to every thread).
pub fn set_uid(uid: uid_t) -> Result<(), String> {
    // SAFETY: plain syscall wrapper taking an integer, no memory involved.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err(os_err("setuid"));
    }
    Ok(())
}

/// Real and effective user and group ids: `(uid, euid, gid, egid)`.
pub fn ids() -> (uid_t, uid_t, gid_t, gid_t) {
    // SAFETY: getters without arguments, no memory involved; they cannot fail.
    let uid = unsafe { libc::getuid() };
    // SAFETY: as above.
    let euid = unsafe { libc::geteuid() };
    // SAFETY: as above.
    let gid = unsafe { libc::getgid() };
    // SAFETY: as above.
    let egid = unsafe { libc::getegid() };
    (uid, euid, gid, egid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_user_is_an_error() {
        assert!(lookup_user("no-such-user-trustmap-test").is_err());
        assert!(lookup_user("bad\0name").is_err());
        assert_eq!(lookup_user("root").ok().map(|u| u.0), Some(0));
    }
}

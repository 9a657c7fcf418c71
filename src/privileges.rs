//! Dropping privileges for `--user` (`capture`, `mirror`): once the capture and the output
//! files are open, the process becomes an ordinary user with no way back.

use anyhow::{anyhow, bail};

/// Drops to `user` for `--user`, once the capture (and any output file) is open, and says so
/// on `err` (RELIABILITY.md S01; tcpdump's `droproot`): no supplementary groups, its primary
/// group, its uid, an empty capability bounding set and `PR_SET_NO_NEW_PRIVS`, so neither a
/// set-uid program nor a file capability can give anything back. Called before any thread is
/// started: the bounding set and `no_new_privs` belong to a thread and are inherited by the
/// threads it starts.
pub fn drop_privileges(user: &str, err: &mut dyn std::io::Write) -> anyhow::Result<()> {
    let (uid, gid) = lookup_user(user)?;
    let fail = |what: &str| {
        anyhow!(
            "--user {user:?}: {what}: {}",
            std::io::Error::last_os_error()
        )
    };
    // SAFETY: plain system calls on integers and a null list; their results are checked.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(fail("setgroups"));
        }
    }
    // Needs CAP_SETPCAP, which setuid below takes away: first.
    drop_bounding_set().map_err(|e| anyhow!("--user {user:?}: {e}"))?;
    // SAFETY: as above.
    unsafe {
        if libc::setgid(gid) != 0 {
            return Err(fail("setgid"));
        }
        if libc::setuid(uid) != 0 {
            return Err(fail("setuid"));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(fail("PR_SET_NO_NEW_PRIVS"));
        }
        // Make sure there is no way back.
        if uid != 0 && libc::setuid(0) == 0 {
            bail!("--user {user:?}: could still regain root");
        }
    }
    writeln!(
        err,
        "shadowtap: dropped privileges to {user} (uid {uid}, gid {gid})"
    )?;
    Ok(())
}

/// The uid and primary gid of `user`.
fn lookup_user(user: &str) -> anyhow::Result<(libc::uid_t, libc::gid_t)> {
    let name =
        std::ffi::CString::new(user).map_err(|_| anyhow!("--user {user:?}: invalid name"))?;
    // SAFETY: getpwnam_r writes into the buffers we pass, sized as given; the result pointer
    // is either null or points at `pw`.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        );
        if rc != 0 || result.is_null() {
            bail!("--user {user:?}: no such user");
        }
        Ok((pw.pw_uid, pw.pw_gid))
    }
}

/// Where the kernel says how many capabilities it knows.
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";
/// Capabilities tried when that file cannot be read (the kernel refuses the rest with EINVAL).
const CAP_LAST_FALLBACK: u32 = 63;

/// Empties the capability bounding set: every capability up to the kernel's last one.
fn drop_bounding_set() -> anyhow::Result<()> {
    let last = std::fs::read_to_string(CAP_LAST_CAP)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(CAP_LAST_FALLBACK);
    for cap in 0..=last {
        // SAFETY: a plain system call on integers; its result is checked.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // Beyond what this kernel knows: nothing left to drop.
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            bail!("dropping capability {cap} from the bounding set: {e}");
        }
    }
    Ok(())
}

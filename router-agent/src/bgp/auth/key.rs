//! TCP MD5 keys as configured (`password`, `password_file`) and the remote addresses a
//! listener's key covers. Nothing here touches a socket or the rest of the BGP configuration,
//! so `bgp::config` can hold keys without depending on how they are installed.

use std::{net::IpAddr, path::Path};

use ipnet::IpNet;

/// The longest key the kernel takes (TCP_MD5SIG_MAXKEYLEN).
pub const MAX_KEY_LEN: usize = 80;

/// A TCP MD5 key. Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Md5Key(pub(super) Vec<u8>);

impl std::fmt::Debug for Md5Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Md5Key {
    /// A key from `password` or `password_file` (one of them, checked by the caller).
    /// `key` names the configuration field in errors; the key itself is never in them.
    pub fn from_config(
        password: Option<&str>,
        password_file: Option<&Path>,
        key: &str,
    ) -> Result<Option<Md5Key>, (String, String)> {
        let bytes = match (password, password_file) {
            (None, None) => return Ok(None),
            (Some(_), Some(_)) => {
                return Err((
                    format!("{key}.password_file"),
                    "password and password_file are exclusive".into(),
                ));
            }
            (Some(password), None) => password.as_bytes().to_vec(),
            (None, Some(path)) => {
                read_key_file(path).map_err(|reason| (format!("{key}.password_file"), reason))?
            }
        };
        let field = if password.is_some() {
            "password"
        } else {
            "password_file"
        };
        if bytes.is_empty() {
            return Err((format!("{key}.{field}"), "the key is empty".into()));
        }
        if bytes.len() > MAX_KEY_LEN {
            return Err((
                format!("{key}.{field}"),
                format!(
                    "the key is {} bytes, at most {MAX_KEY_LEN} are allowed (RFC 2385, Linux)",
                    bytes.len()
                ),
            ));
        }
        Ok(Some(Md5Key(bytes)))
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The key file's contents, trailing newline stripped, if only root or we can read or write
/// it (mode 0600 or stricter, owned by root or our user).
pub(in crate::bgp) fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let metadata = std::fs::metadata(path).map_err(|err| format!("{shown}: {err}"))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown} has mode {mode:04o}: group or others can access it (chmod 600)"
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if metadata.uid() != 0 && metadata.uid() != euid {
        return Err(format!(
            "{shown} is owned by uid {}, not root or us (uid {euid})",
            metadata.uid()
        ));
    }
    let mut bytes = std::fs::read(path).map_err(|err| format!("{shown}: {err}"))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(bytes)
}

/// Which remote addresses a key on a listening socket covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyScope {
    Address(IpAddr),
    Prefix(IpNet),
}

impl std::fmt::Display for KeyScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyScope::Address(ip) => ip.fmt(f),
            KeyScope::Prefix(net) => net.fmt(f),
        }
    }
}

/// All link-local peers (unnumbered neighbors, interface ranges). The kernel scopes keys by
/// VRF only, not by interface, so one key covers fe80::/10 on every interface.
pub fn link_local_prefix() -> IpNet {
    "fe80::/10".parse().expect("valid")
}

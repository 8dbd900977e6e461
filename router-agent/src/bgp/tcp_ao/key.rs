//! TCP-AO Master Key Tuples as configured (`tcp_ao = { ... }`): ids, algorithm and secret.
//! Nothing here touches a socket or the rest of the BGP configuration, so `bgp::config` can
//! hold keys without depending on how they are installed.

use std::path::PathBuf;

use serde::Deserialize;

use crate::bgp::{auth::key::read_key_file, policy::PolicyError};

/// The longest key the kernel takes (TCP_AO_MAXKEYLEN).
pub const MAX_KEY_LEN: usize = 80;
/// The MAC algorithms of RFC 5926 (and HMAC-SHA-256), by their kernel names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum AoAlgorithm {
    #[serde(rename = "hmac(sha1)")]
    HmacSha1,
    #[serde(rename = "hmac(sha256)")]
    HmacSha256,
    #[serde(rename = "cmac(aes128)")]
    CmacAes128,
}

impl AoAlgorithm {
    pub fn kernel_name(self) -> &'static str {
        match self {
            AoAlgorithm::HmacSha1 => "hmac(sha1)",
            AoAlgorithm::HmacSha256 => "hmac(sha256)",
            AoAlgorithm::CmacAes128 => "cmac(aes128)",
        }
    }
}

/// `tcp_ao = { ... }` of a neighbor or dynamic range, as written.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpAoConfig {
    /// SendID and RecvID at once (the same KeyID both ways).
    pub key_id: Option<u8>,
    /// The KeyID we put in our segments (the peer's RecvID).
    pub send_id: Option<u8>,
    /// The KeyID we expect in the peer's segments (the peer's SendID).
    pub recv_id: Option<u8>,
    pub algorithm: AoAlgorithm,
    /// The master key; or `key_file`.
    pub key: Option<String>,
    /// A file holding the master key (mode 0600 or stricter, owned by root or us).
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for TcpAoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpAoConfig")
            .field("key_id", &self.key_id)
            .field("send_id", &self.send_id)
            .field("recv_id", &self.recv_id)
            .field("algorithm", &self.algorithm)
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

/// A Master Key Tuple (RFC 5925 3.1) without the connection identifiers (those are the
/// neighbor's). Debug never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AoKey {
    pub send_id: u8,
    pub recv_id: u8,
    pub algorithm: AoAlgorithm,
    pub(super) secret: Vec<u8>,
}

impl std::fmt::Debug for AoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AoKey")
            .field("send_id", &self.send_id)
            .field("recv_id", &self.recv_id)
            .field("algorithm", &self.algorithm)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl AoKey {
    /// The key of `config`; `key` names the neighbor's configuration entry in errors
    /// (`bgp.neighbor[0]`), whose field `tcp_ao.*` is at fault. The secret is never in them.
    pub fn from_config(config: &TcpAoConfig, key: &str) -> Result<AoKey, PolicyError> {
        let invalid = |field: &str, reason: String| PolicyError {
            key: format!("{key}.tcp_ao.{field}"),
            reason,
        };
        let (send_id, recv_id) = match (config.key_id, config.send_id, config.recv_id) {
            (Some(id), None, None) => (id, id),
            (None, Some(send), Some(recv)) => (send, recv),
            (Some(_), _, _) => {
                return Err(invalid(
                    "key_id",
                    "key_id sets both send_id and recv_id: give either key_id or both".into(),
                ));
            }
            (None, _, _) => {
                return Err(invalid(
                    "send_id",
                    "key_id, or both send_id and recv_id, are needed".into(),
                ));
            }
        };
        let (field, secret) = match (&config.key, &config.key_file) {
            (Some(key), None) => ("key", key.as_bytes().to_vec()),
            (None, Some(path)) => (
                "key_file",
                read_key_file(path).map_err(|reason| invalid("key_file", reason))?,
            ),
            (Some(_), Some(_)) => {
                return Err(invalid("key_file", "key and key_file are exclusive".into()));
            }
            (None, None) => {
                return Err(invalid("key", "key or key_file is needed".into()));
            }
        };
        if secret.is_empty() {
            return Err(invalid(field, "the key is empty".into()));
        }
        if secret.len() > MAX_KEY_LEN {
            return Err(invalid(
                field,
                format!(
                    "the key is {} bytes, at most {MAX_KEY_LEN} are allowed (Linux)",
                    secret.len()
                ),
            ));
        }
        Ok(AoKey {
            send_id,
            recv_id,
            algorithm: config.algorithm,
            secret,
        })
    }
}

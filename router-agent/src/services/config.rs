//! `[[service]]`: an anycast service announced while its health checks pass.
//!
//! ```toml
//! [[service]]
//! name = "dns"                        # [A-Za-z0-9_.-]{1,64}, unique
//! prefixes = ["192.0.2.53/32", "2001:db8::53/128"]
//! interval = "1s"                     # default 2s; 100ms..1h
//! timeout = "500ms"                   # default 1s; at most interval
//! rise = 2                            # default 2; 1..100
//! fall = 1                            # default 2; 1..100
//! hold_down = "10s"                   # default 10s; 0..1h: after recovery, before re-announce
//! on_failure = "withdraw"             # withdraw (default) | degrade
//! degrade = { prepend = 3, graceful_shutdown = true }   # only with on_failure = "degrade"
//! communities = ["65101:53"]; large_communities = []; med = 10
//! assign = false                      # true: the prefixes (host-length) go on assign_interface
//! assign_interface = "hostrouter0"    # a dummy, created if absent
//! [[service.check]]                   # exactly one kind per check; all must pass
//! tcp = "127.0.0.1:53"
//! [[service.check]]
//! http = { url = "http://127.0.0.1:8080/health", status = 200, body = "ok" }
//! [[service.check]]
//! dns = { server = "127.0.0.1:53", name = "health.example.", type = "A" }
//! [[service.check]]
//! exec = { command = ["/usr/local/bin/lb-ok", "--quick"], exit = 0 }   # argv, no shell
//! ```

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de};

use crate::bgp::policy::{Community, LargeCommunity};

use super::http::Url;
pub use super::{dns::DnsCheckConfig, exec::ExecCheckConfig, http::HttpCheckConfig};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    #[serde(deserialize_with = "prefixes")]
    pub prefixes: Vec<IpNet>,
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
    #[serde(with = "humantime_serde", default = "default_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_rise_fall")]
    pub rise: u32,
    #[serde(default = "default_rise_fall")]
    pub fall: u32,
    #[serde(with = "humantime_serde", default = "default_hold_down")]
    pub hold_down: Duration,
    #[serde(default)]
    pub on_failure: OnFailure,
    #[serde(default)]
    pub degrade: Option<DegradeConfig>,
    #[serde(default)]
    pub communities: Vec<Community>,
    #[serde(default)]
    pub large_communities: Vec<LargeCommunity>,
    #[serde(default)]
    pub med: Option<u32>,
    #[serde(default)]
    pub assign: bool,
    #[serde(default = "default_assign_interface")]
    pub assign_interface: String,
    #[serde(default)]
    pub check: Vec<CheckConfig>,
}

/// What a failing service does to its prefixes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnFailure {
    #[default]
    Withdraw,
    /// Keep announcing, made less preferred (`degrade`).
    Degrade,
}

/// How a degraded service's prefixes are announced.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct DegradeConfig {
    /// Extra own-AS prepends (eBGP only).
    #[serde(default)]
    pub prepend: u8,
    /// Tag with GRACEFUL_SHUTDOWN (65535:0).
    #[serde(default)]
    pub graceful_shutdown: bool,
}

/// One `[[service.check]]`: exactly one of the keys.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    pub tcp: Option<SocketAddr>,
    pub http: Option<HttpCheckConfig>,
    pub dns: Option<DnsCheckConfig>,
    pub exec: Option<ExecCheckConfig>,
}

fn default_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_rise_fall() -> u32 {
    2
}
fn default_hold_down() -> Duration {
    Duration::from_secs(10)
}
/// The dummy interface `assign = true` puts VIPs on unless told otherwise.
pub const DEFAULT_ASSIGN_INTERFACE: &str = "hostrouter0";
fn default_assign_interface() -> String {
    DEFAULT_ASSIGN_INTERFACE.to_owned()
}

fn prefixes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|text| crate::config::prefix::parse(text).map_err(de::Error::custom))
        .collect()
}

const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_RISE_FALL: u32 = 100;

type Refusal = (String, String);

/// Validates every `[[service]]` on its own and against the others and `[[bgp.originate]]`
/// (`originated`: each originated prefix with its key). What needs the compiled export
/// policy is checked by the caller.
pub fn validate(services: &[ServiceConfig], originated: &[(String, IpNet)]) -> Result<(), Refusal> {
    let mut names = std::collections::BTreeSet::new();
    let mut seen: Vec<(String, IpNet)> = originated.to_vec();
    for (i, service) in services.iter().enumerate() {
        let key = format!("service[{i}]");
        if !valid_name(&service.name) {
            return Err((
                format!("{key}.name"),
                format!(
                    "{:?}: a service name is 1-64 of A-Z a-z 0-9 _ . -",
                    service.name
                ),
            ));
        }
        if !names.insert(service.name.as_str()) {
            return Err((
                format!("{key}.name"),
                format!("{:?} is configured twice", service.name),
            ));
        }
        service.validate(&key)?;
        for (m, prefix) in service.prefixes.iter().enumerate() {
            if let Some((other, _)) = seen
                .iter()
                .find(|(_, p)| p.contains(prefix) || prefix.contains(p))
            {
                return Err((
                    format!("{key}.prefixes[{m}]"),
                    format!("{prefix} overlaps {other}: a prefix is announced by one source only"),
                ));
            }
        }
        seen.extend(
            service
                .prefixes
                .iter()
                .enumerate()
                .map(|(m, p)| (format!("{key}.prefixes[{m}] ({:?})", service.name), *p)),
        );
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl ServiceConfig {
    fn validate(&self, key: &str) -> Result<(), Refusal> {
        if self.prefixes.is_empty() {
            return Err((
                format!("{key}.prefixes"),
                "a service needs at least one prefix".into(),
            ));
        }
        for (m, prefix) in self.prefixes.iter().enumerate() {
            let k = format!("{key}.prefixes[{m}]");
            crate::bgp::policy::OriginatedRoute::new(*prefix, &[], &[])
                .map_err(|e| (k.clone(), e))?;
            if let Some(why) = crate::config::prefix::ipv4_mapped(prefix) {
                return Err((k, why));
            }
            if self.prefixes[..m].contains(prefix) {
                return Err((k, format!("{prefix} is listed twice")));
            }
            if self.assign && prefix.prefix_len() != prefix.max_prefix_len() {
                return Err((
                    k,
                    format!(
                        "{prefix}: assign = true puts each prefix on {} as an address, so it \
                         must be host-length (/32 or /128)",
                        self.assign_interface
                    ),
                ));
            }
        }
        duration_in(&format!("{key}.interval"), self.interval, MIN_INTERVAL)?;
        duration_in(
            &format!("{key}.timeout"),
            self.timeout,
            Duration::from_millis(1),
        )?;
        if self.timeout > self.interval {
            return Err((
                format!("{key}.timeout"),
                format!(
                    "{} is longer than interval ({}): a round must end before the next",
                    humantime_serde::re::humantime::format_duration(self.timeout),
                    humantime_serde::re::humantime::format_duration(self.interval)
                ),
            ));
        }
        if self.hold_down > MAX_DURATION {
            return Err((format!("{key}.hold_down"), "at most 1h".into()));
        }
        for (field, value) in [("rise", self.rise), ("fall", self.fall)] {
            if !(1..=MAX_RISE_FALL).contains(&value) {
                return Err((
                    format!("{key}.{field}"),
                    format!("{value}: must be 1..{MAX_RISE_FALL}"),
                ));
            }
        }
        if self.degrade.is_some() && self.on_failure != OnFailure::Degrade {
            return Err((
                format!("{key}.degrade"),
                "only with on_failure = \"degrade\"".into(),
            ));
        }
        if self.assign {
            let name = &self.assign_interface;
            if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['/', ' ']) {
                return Err((
                    format!("{key}.assign_interface"),
                    format!("{name:?} is not a valid interface name"),
                ));
            }
        }
        if self.check.is_empty() {
            return Err((
                format!("{key}.check"),
                "a service needs at least one check (`[[service.check]]`)".into(),
            ));
        }
        for (m, check) in self.check.iter().enumerate() {
            let k = format!("{key}.check[{m}]");
            check.validate(&k)?;
            if self.assign
                && self.on_failure == OnFailure::Withdraw
                && let Some(target) = check.target(&k)?
                && self.prefixes.iter().any(|p| p.contains(&target))
            {
                return Err((
                    k,
                    format!(
                        "targets {target}, which is removed while the service is down, \
                         so the check could never pass again"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Start-time warnings, not errors: what may be fixed on the host before the service is
    /// needed (an exec check's program missing).
    pub fn warnings(&self, index: usize) -> Vec<String> {
        self.check
            .iter()
            .enumerate()
            .filter_map(|(m, check)| {
                let exec = check.exec.as_ref()?;
                let path = PathBuf::from(exec.command.first()?);
                (!path.exists()).then(|| {
                    format!(
                        "service[{index}].check[{m}].exec.command[0]: {} does not exist \
                         (service {:?} stays down until it does)",
                        path.display(),
                        self.name
                    )
                })
            })
            .collect()
    }
}

fn duration_in(key: &str, value: Duration, min: Duration) -> Result<(), Refusal> {
    if value < min || value > MAX_DURATION {
        return Err((
            key.to_owned(),
            format!(
                "{}: must be {}..1h",
                humantime_serde::re::humantime::format_duration(value),
                humantime_serde::re::humantime::format_duration(min)
            ),
        ));
    }
    Ok(())
}

impl CheckConfig {
    fn validate(&self, key: &str) -> Result<(), Refusal> {
        let kinds = [
            self.tcp.is_some(),
            self.http.is_some(),
            self.dns.is_some(),
            self.exec.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err((
                key.to_owned(),
                "a check has exactly one of tcp, http, dns, exec".into(),
            ));
        }
        if let Some(http) = &self.http {
            let url = Url::parse(&http.url).map_err(|why| (format!("{key}.http.url"), why))?;
            if !url.tls && (http.ca_file.is_some() || http.insecure) {
                let field = if http.insecure { "insecure" } else { "ca_file" };
                return Err((
                    format!("{key}.http.{field}"),
                    "only for https:// URLs".into(),
                ));
            }
            if http.ca_file.is_some() && http.insecure {
                return Err((
                    format!("{key}.http.insecure"),
                    "with ca_file: verify against it, or take any certificate, not both".into(),
                ));
            }
            // The CA file is read now: a missing or garbled one is named by `check`.
            super::http::HttpCheck::from_config(http)
                .map_err(|why| (format!("{key}.http.ca_file"), why))?;
            if !(100..=599).contains(&http.status) {
                return Err((
                    format!("{key}.http.status"),
                    format!("{}: not an HTTP status", http.status),
                ));
            }
        }
        if let Some(dns) = &self.dns {
            super::dns::encode_name(&dns.name).map_err(|why| (format!("{key}.dns.name"), why))?;
        }
        if let Some(exec) = &self.exec {
            match exec.command.first() {
                None => {
                    return Err((
                        format!("{key}.exec.command"),
                        "empty: give the program and its arguments".into(),
                    ));
                }
                Some(program) if !program.starts_with('/') => {
                    return Err((
                        format!("{key}.exec.command[0]"),
                        format!("{program:?} is not an absolute path (no shell, no PATH search)"),
                    ));
                }
                Some(_) => {}
            }
            if exec.command.iter().any(|arg| arg.contains('\0')) {
                return Err((
                    format!("{key}.exec.command"),
                    "an argument holds a NUL byte".into(),
                ));
            }
        }
        Ok(())
    }

    /// The address this check connects to, if it names one.
    fn target(&self, key: &str) -> Result<Option<IpAddr>, Refusal> {
        Ok(if let Some(address) = self.tcp {
            Some(address.ip())
        } else if let Some(dns) = &self.dns {
            Some(dns.server.ip())
        } else if let Some(http) = &self.http {
            let url = Url::parse(&http.url).map_err(|why| (format!("{key}.http.url"), why))?;
            url.host.parse().ok()
        } else {
            None
        })
    }
}

//! `router-agent drain` / `undrain` on the control socket: one line each,
//! `drain [service=NAME] [prepend=N] [withdraw-after=DUR] [wait] [max-wait=DUR]
//! [wait-traffic] [idle-below=PPS]` and
//! `undrain [service=NAME]`.

use std::time::Duration;

use super::config::{MAX_PREPEND, parse_duration};

/// How long `drain --wait` waits for the UPDATEs to be written, unless told.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);
/// `--wait-traffic`: the rate (packets/s) under which the traffic counts as moved.
pub const DEFAULT_IDLE_BELOW: u64 = 10;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainRequest {
    /// One service's prefixes; None: everything the host announces.
    pub service: Option<String>,
    /// None: `[drain] prepend`.
    pub prepend: Option<u8>,
    /// None: `[drain] withdraw_after`.
    pub withdraw_after: Option<Duration>,
    /// Answer once every peer has been sent the drained routes (or `max_wait` passed).
    pub wait: bool,
    pub max_wait: Option<Duration>,
    /// With `wait`: then also until the drained prefixes' XDP traffic is under `idle_below`
    /// (`traffic.rs`), all within `max_wait`.
    pub wait_traffic: bool,
    /// Packets per second; None: [`DEFAULT_IDLE_BELOW`].
    pub idle_below: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UndrainRequest {
    pub service: Option<String>,
}

/// A service name as `[[service]] name` allows: `[A-Za-z0-9_.-]{1,64}`.
pub fn valid_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `--service`: a valid service name.
pub fn parse_service(value: &str) -> Result<String, String> {
    if valid_service_name(value) {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a service name ([A-Za-z0-9_.-], 1-64)"
        ))
    }
}

/// `--prepend`: 0..=10.
pub fn parse_prepend(value: &str) -> Result<u8, String> {
    match value.parse::<u8>() {
        Ok(n) if n <= MAX_PREPEND => Ok(n),
        _ => Err(format!("prepend {value:?}: 0 to {MAX_PREPEND}")),
    }
}

impl DrainRequest {
    pub fn parse(words: &[&str]) -> Result<Self, String> {
        let mut request = Self::default();
        for word in words {
            match word.split_once('=') {
                None if *word == "wait" => request.wait = true,
                None if *word == "wait-traffic" => request.wait_traffic = true,
                Some(("idle-below", value)) => {
                    request.idle_below = Some(value.parse().map_err(|_| {
                        format!("idle-below {value:?}: a rate in packets per second")
                    })?)
                }
                Some(("service", value)) => request.service = Some(parse_service(value)?),
                Some(("prepend", value)) => request.prepend = Some(parse_prepend(value)?),
                Some(("withdraw-after", value)) => {
                    request.withdraw_after = Some(parse_duration(value)?)
                }
                Some(("max-wait", value)) => request.max_wait = Some(parse_duration(value)?),
                _ => return Err(format!("drain: unknown argument {word:?}")),
            }
        }
        Ok(request)
    }

    pub fn to_line(&self) -> String {
        let mut line = String::from("drain");
        if let Some(service) = &self.service {
            line.push_str(&format!(" service={service}"));
        }
        if let Some(prepend) = self.prepend {
            line.push_str(&format!(" prepend={prepend}"));
        }
        if let Some(after) = self.withdraw_after {
            line.push_str(&format!(" withdraw-after={}ms", after.as_millis()));
        }
        if self.wait {
            line.push_str(" wait");
        }
        if let Some(max_wait) = self.max_wait {
            line.push_str(&format!(" max-wait={}ms", max_wait.as_millis()));
        }
        if self.wait_traffic {
            line.push_str(" wait-traffic");
        }
        if let Some(pps) = self.idle_below {
            line.push_str(&format!(" idle-below={pps}"));
        }
        line
    }

    /// How long the answer may take.
    pub fn answer_within(&self) -> Duration {
        if self.wait {
            self.max_wait.unwrap_or(DEFAULT_MAX_WAIT)
        } else {
            Duration::ZERO
        }
    }
}

impl UndrainRequest {
    pub fn parse(words: &[&str]) -> Result<Self, String> {
        match words {
            [] => Ok(Self::default()),
            [word] => match word.split_once('=') {
                Some(("service", value)) => Ok(Self {
                    service: Some(parse_service(value)?),
                }),
                _ => Err(format!("undrain: unknown argument {word:?}")),
            },
            _ => Err("undrain: one service at most".into()),
        }
    }

    pub fn to_line(&self) -> String {
        match &self.service {
            Some(service) => format!("undrain service={service}"),
            None => "undrain".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<&str> {
        line.split_whitespace().skip(1).collect()
    }

    #[test]
    fn lines_round_trip() {
        let request = DrainRequest {
            service: Some("dns.v6".into()),
            prepend: Some(3),
            withdraw_after: Some(Duration::from_secs(90)),
            wait: true,
            max_wait: Some(Duration::from_millis(2500)),
            wait_traffic: true,
            idle_below: Some(5),
        };
        let line = request.to_line();
        assert_eq!(DrainRequest::parse(&words(&line)).unwrap(), request);
        assert_eq!(DrainRequest::parse(&[]).unwrap(), DrainRequest::default());
        let undrain = UndrainRequest {
            service: Some("web".into()),
        };
        assert_eq!(
            UndrainRequest::parse(&words(&undrain.to_line())).unwrap(),
            undrain
        );
        assert_eq!(UndrainRequest::parse(&[]).unwrap().service, None);
    }

    #[test]
    fn bad_arguments_are_refused_by_name() {
        for (line, needle) in [
            ("drain prepend=11", "prepend"),
            ("drain prepend=-1", "prepend"),
            ("drain service=a/b", "service name"),
            ("drain withdraw-after=0s", "off"),
            ("drain max-wait=soon", "soon"),
            ("drain now", "now"),
            ("drain idle-below=fast", "packets per second"),
        ] {
            let err = DrainRequest::parse(&words(line)).unwrap_err();
            assert!(err.contains(needle), "{line}: {err}");
        }
        assert!(UndrainRequest::parse(&["service=x", "service=y"]).is_err());
        assert!(UndrainRequest::parse(&["all"]).is_err());
    }
}

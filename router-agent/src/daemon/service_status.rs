//! The one-line status a service manager shows (`systemctl status`: "Status: ..."), sent with
//! READY=1 (`crate::systemd`).

use super::Agent;

impl Agent {
    /// What is forwarding: routes, the attached interfaces, and an adoption in progress.
    pub(super) fn ready_status(&self) -> String {
        let interfaces: Vec<&str> = self.interfaces.values().map(String::as_str).collect();
        let adopting = if self.adoption.is_some() {
            ", adopting the previous run's routes"
        } else {
            ""
        };
        format!(
            "forwarding {} routes on {}{adopting}",
            self.fib.route_count(),
            if interfaces.is_empty() {
                "no interface".to_owned()
            } else {
                interfaces.join(", ")
            }
        )
    }
}

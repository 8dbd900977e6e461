//! The registry one scrape fills: families by name, with the labels operators join on.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use std::sync::atomic::AtomicU64;

/// Label pairs; the keys are fixed names (`neighbor`, `interface`, `family`, `verdict`...).
pub type Labels = Vec<(&'static str, String)>;
pub type GaugeFamily = Family<Labels, Gauge<f64, AtomicU64>>;
pub type CounterFamily = Family<Labels, Counter<f64, AtomicU64>>;

#[derive(Default)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// Registers gauge family `name`; set its samples through the handle returned.
    pub fn gauge(&mut self, name: &str, help: &str) -> GaugeFamily {
        let family = GaugeFamily::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// Registers counter family `name` (without `_total`: the encoder appends it).
    pub fn counter(&mut self, name: &str, help: &str) -> CounterFamily {
        let family = CounterFamily::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// `hostrouter_build_info{version}` = 1: which agent answers.
    pub fn build_info(&mut self) {
        self.gauge(
            "hostrouter_build_info",
            "The router-agent serving these metrics, by version",
        )
        .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
        .set(1.0);
    }

    /// OpenMetrics text, as prometheus-client writes it.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Sets the sample of `labels` in a gauge family.
pub fn set(family: &GaugeFamily, labels: Labels, value: f64) {
    family.get_or_create(&labels).set(value);
}

/// Sets the sample of `labels` in a counter family to `total` (read from its source: the
/// registry lives for one scrape).
pub fn count(family: &CounterFamily, labels: Labels, total: f64) {
    family.get_or_create(&labels).inc_by(total);
}

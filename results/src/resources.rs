//! CPU and memory of a run's local processes, as results.json records them, and the one
//! judgement made from them: whether the load generator, not the server, was the bottleneck.

use serde::{Deserialize, Serialize};

/// CPU and memory of the run's local processes, grouped by component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Seconds between samples.
    pub interval_s: f64,
    pub components: Vec<Component>,
    /// The load generator used more CPU than every server component together (workers,
    /// master, nginx, Redis): the generator, not the server, was measured. False when no
    /// server component was sampled.
    pub generator_bound: bool,
    /// The run time (seconds since the run's start: the timeline's `t`) at which the series'
    /// `t` are counted, so a sample was taken at run time `t + series_origin_s`; negative when
    /// sampling started before the run (a split run's parent). `None` in files written before
    /// it existed, where the two clocks cannot be lined up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_origin_s: Option<f64>,
}

/// The component names of the load generator: `loadgen`, or `loadgen (...)` when something
/// else runs inside its process (the embedded worker).
pub fn is_generator(name: &str) -> bool {
    name == "loadgen" || name.starts_with("loadgen ")
}

impl Resources {
    pub fn new(interval_s: f64, components: Vec<Component>) -> Resources {
        let generator_bound = generator_bound(&components);
        Resources {
            interval_s,
            components,
            generator_bound,
            series_origin_s: None,
        }
    }

    /// The same, its series lined up with the run's timeline (see [`Resources::series_origin_s`]).
    pub fn with_series_origin(mut self, origin_s: f64) -> Resources {
        self.series_origin_s = Some(origin_s);
        self
    }
}

/// True when the load generator's CPU seconds exceed the server components' together, and
/// some server component was sampled.
pub fn generator_bound(components: &[Component]) -> bool {
    let (generator, server): (Vec<&Component>, Vec<&Component>) =
        components.iter().partition(|c| is_generator(&c.name));
    let cpu = |cs: &[&Component]| cs.iter().map(|c| c.cpu_seconds).sum::<f64>();
    !server.is_empty() && cpu(&generator) > cpu(&server)
}

/// One component (`loadgen`, `chat worker 0`, `master`, `nginx`, `redis`): its processes
/// summed, restarted processes included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    /// CPU time (user + system) used while sampled, seconds.
    pub cpu_seconds: f64,
    /// The highest resident memory seen in one sample, KiB.
    pub peak_rss_kib: u64,
    pub series: Vec<ResourceSample>,
}

/// One sample of a component.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ResourceSample {
    /// Seconds since the sampling started (since [`Resources::series_origin_s`] on the run's
    /// clock; after a merge, since the earliest part's).
    pub t: f64,
    /// CPU used since the previous sample, percent of one core (200 = two cores busy).
    pub cpu_percent: f64,
    pub rss_kib: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn component(name: &str, cpu_seconds: f64) -> Component {
        Component {
            name: name.into(),
            cpu_seconds,
            peak_rss_kib: 1,
            series: Vec::new(),
        }
    }

    #[test]
    fn the_generator_is_bound_when_it_outspends_the_whole_server() {
        let server = [
            component("chat worker 0", 1.0),
            component("chat worker 1", 1.0),
            component("nginx", 0.5),
            component("redis", 0.5),
        ];
        let mut all = vec![component("loadgen", 2.9)];
        all.extend(server.iter().cloned());
        assert!(!generator_bound(&all));
        all[0].cpu_seconds = 3.1;
        assert!(generator_bound(&all));
        // Nothing of the server sampled (a URL target): nothing to judge.
        assert!(!generator_bound(&[component("loadgen", 9.0)]));
        assert!(!generator_bound(&[component(
            "loadgen (with the embedded chat worker)",
            9.0
        )]));
        assert!(generator_bound(&[
            component("loadgen (with the embedded chat worker)", 9.0),
            component("redis", 1.0)
        ]));
    }
}

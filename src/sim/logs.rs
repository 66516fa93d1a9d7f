//! Container output kept in memory for `kubectl logs` (the `pods/log` subresource).

use crate::apiserver::PodLogs;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::SystemTime;

/// Lines kept per container; older lines are dropped.
const MAX_LINES: usize = 2_000;

/// One pod's containers, in order, each with its recent lines and when each was written.
type PodLines = Vec<(String, VecDeque<(SystemTime, String)>)>;

/// Log lines per pod (`namespace/name`) and container, in container order.
#[derive(Default)]
pub struct LogBook {
    pods: Mutex<HashMap<String, PodLines>>,
}

impl LogBook {
    pub fn append(&self, pod_key: &str, container: &str, line: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let containers = pods.entry(pod_key.to_string()).or_default();
        let idx = match containers.iter().position(|(c, _)| c == container) {
            Some(i) => i,
            None => {
                containers.push((container.to_string(), VecDeque::new()));
                containers.len() - 1
            }
        };
        let lines = &mut containers[idx].1;
        if lines.len() >= MAX_LINES {
            lines.pop_front();
        }
        lines.push_back((SystemTime::now(), line.to_string()));
    }

    /// Forgets a pod's logs (it was deleted).
    pub fn forget(&self, pod_key: &str) {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(pod_key);
    }
}

impl PodLogs for LogBook {
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<Vec<(SystemTime, String)>, String> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let Some(containers) = pods.get(&format!("{namespace}/{pod}")) else {
            return Ok(Vec::new());
        };
        let lines = match container {
            Some(c) => {
                &containers
                    .iter()
                    .find(|(name, _)| name == c)
                    .ok_or_else(|| format!("container {c} is not valid for pod {pod}"))?
                    .1
            }
            None => match containers.first() {
                Some((_, l)) => l,
                None => return Ok(Vec::new()),
            },
        };
        Ok(lines.iter().cloned().collect())
    }
}

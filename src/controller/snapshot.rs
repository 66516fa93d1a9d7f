//! A consistent-enough view of every object the controller reads, taken from the store in one
//! pass (or built from JSON in tests), plus the inputs that are not objects (bind results, time).

use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::util::meta_str;
use crate::resources::{self, kinds, ResourceDef};
use crate::routing::Bindings;
use crate::store::Store;

/// Everything [`super::compute`] looks at. Lists are sorted by namespace and name (store order).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub gateway_classes: Vec<Arc<Value>>,
    pub gateways: Vec<Arc<Value>>,
    pub httproutes: Vec<Arc<Value>>,
    pub grpcroutes: Vec<Arc<Value>>,
    pub reference_grants: Vec<Arc<Value>>,
    pub services: Vec<Arc<Value>>,
    pub endpoint_slices: Vec<Arc<Value>>,
    pub endpoints: Vec<Arc<Value>>,
    pub pods: Vec<Arc<Value>>,
    pub secrets: Vec<Arc<Value>>,
    pub namespaces: Vec<Arc<Value>>,
    pub albs: Vec<Arc<Value>>,
    pub health_check_policies: Vec<Arc<Value>>,
    pub route_policies: Vec<Arc<Value>>,
    pub frontend_tls_policies: Vec<Arc<Value>>,
    pub backend_tls_policies: Vec<Arc<Value>>,
    /// Listener bind results reported by the proxy.
    pub bindings: Arc<Bindings>,
    /// Wall clock used for `lastTransitionTime` and ALB provisioning.
    pub now: SystemTime,
    /// How long a new ApplicationLoadBalancer shows `Deployment: InProgress`.
    pub alb_provisioning_delay: Duration,
    /// Whether HTTP/HTTPS listeners without `allowedRoutes.kinds` also accept GRPCRoute.
    pub grpcroute_in_default_kinds: bool,
    /// Whether listener ports other than 80 and 443 are rejected (AGC behaviour).
    pub strict_ports: bool,
}

/// The store kinds the controller reads, for event filtering.
pub fn watched_kinds() -> Vec<&'static ResourceDef> {
    let mut v = vec![
        kinds::gatewayclasses(),
        kinds::gateways(),
        kinds::httproutes(),
        kinds::grpcroutes(),
        kinds::referencegrants(),
        kinds::services(),
        kinds::endpointslices(),
        kinds::endpoints(),
        kinds::pods(),
        kinds::secrets(),
        kinds::namespaces(),
        kinds::applicationloadbalancers(),
        kinds::healthcheckpolicies(),
        kinds::routepolicies(),
    ];
    v.extend(frontend_tls());
    v.extend(backend_tls());
    v
}

fn frontend_tls() -> Option<&'static ResourceDef> {
    resources::by_plural(resources::ALB, "frontendtlspolicies")
}

fn backend_tls() -> Option<&'static ResourceDef> {
    resources::by_plural(resources::ALB, "backendtlspolicies")
}

impl Snapshot {
    /// Snapshot with AGC's default switches and no objects.
    pub fn empty() -> Self {
        Snapshot {
            gateway_classes: Vec::new(),
            gateways: Vec::new(),
            httproutes: Vec::new(),
            grpcroutes: Vec::new(),
            reference_grants: Vec::new(),
            services: Vec::new(),
            endpoint_slices: Vec::new(),
            endpoints: Vec::new(),
            pods: Vec::new(),
            secrets: Vec::new(),
            namespaces: Vec::new(),
            albs: Vec::new(),
            health_check_policies: Vec::new(),
            route_policies: Vec::new(),
            frontend_tls_policies: Vec::new(),
            backend_tls_policies: Vec::new(),
            bindings: Arc::default(),
            now: SystemTime::now(),
            alb_provisioning_delay: Duration::ZERO,
            grpcroute_in_default_kinds: false,
            strict_ports: true,
        }
    }

    /// Reads every watched kind from the store.
    pub fn from_store(store: &Store, bindings: Arc<Bindings>) -> Self {
        let l = |r: &'static ResourceDef| store.list(r, None).0;
        Snapshot {
            gateway_classes: l(kinds::gatewayclasses()),
            gateways: l(kinds::gateways()),
            httproutes: l(kinds::httproutes()),
            grpcroutes: l(kinds::grpcroutes()),
            reference_grants: l(kinds::referencegrants()),
            services: l(kinds::services()),
            endpoint_slices: l(kinds::endpointslices()),
            endpoints: l(kinds::endpoints()),
            pods: l(kinds::pods()),
            secrets: l(kinds::secrets()),
            namespaces: l(kinds::namespaces()),
            albs: l(kinds::applicationloadbalancers()),
            health_check_policies: l(kinds::healthcheckpolicies()),
            route_policies: l(kinds::routepolicies()),
            frontend_tls_policies: frontend_tls().map(l).unwrap_or_default(),
            backend_tls_policies: backend_tls().map(l).unwrap_or_default(),
            bindings,
            ..Snapshot::empty()
        }
    }

    /// Builds a snapshot from objects (tests): each goes to the list of its `kind`.
    pub fn from_objects(objs: impl IntoIterator<Item = Value>) -> Self {
        let mut s = Snapshot::empty();
        for o in objs {
            let kind = o
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let o = Arc::new(o);
            let list = match kind.as_str() {
                "GatewayClass" => &mut s.gateway_classes,
                "Gateway" => &mut s.gateways,
                "HTTPRoute" => &mut s.httproutes,
                "GRPCRoute" => &mut s.grpcroutes,
                "ReferenceGrant" => &mut s.reference_grants,
                "Service" => &mut s.services,
                "EndpointSlice" => &mut s.endpoint_slices,
                "Endpoints" => &mut s.endpoints,
                "Pod" => &mut s.pods,
                "Secret" => &mut s.secrets,
                "Namespace" => &mut s.namespaces,
                "ApplicationLoadBalancer" => &mut s.albs,
                "HealthCheckPolicy" => &mut s.health_check_policies,
                "RoutePolicy" => &mut s.route_policies,
                "FrontendTLSPolicy" => &mut s.frontend_tls_policies,
                "BackendTLSPolicy" => &mut s.backend_tls_policies,
                _ => continue,
            };
            list.push(o);
        }
        s
    }

    /// Finds an object by namespace and name in one of the lists.
    pub fn find<'a>(list: &'a [Arc<Value>], ns: &str, name: &str) -> Option<&'a Arc<Value>> {
        list.iter()
            .find(|o| crate::meta::namespace(o) == ns && crate::meta::name(o) == name)
    }
}

/// Lookup maps built once per compute so that per-route work stays O(1).
pub struct Index<'a> {
    pub services: HashMap<(&'a str, &'a str), &'a Value>,
    pub secrets: HashMap<(&'a str, &'a str), &'a Value>,
    pub namespaces: HashMap<&'a str, &'a Value>,
    pub pods: HashMap<(&'a str, &'a str), &'a Value>,
    /// EndpointSlices by (namespace, service name).
    pub slices: HashMap<(&'a str, &'a str), Vec<&'a Value>>,
    pub endpoints: HashMap<(&'a str, &'a str), &'a Value>,
}

fn nn(o: &Value) -> (&str, &str) {
    (meta_str(o, "namespace"), meta_str(o, "name"))
}

impl<'a> Index<'a> {
    pub fn new(s: &'a Snapshot) -> Self {
        let mut slices: HashMap<(&str, &str), Vec<&Value>> = HashMap::new();
        for sl in &s.endpoint_slices {
            if let Some(svc) = crate::meta::label(sl, "kubernetes.io/service-name") {
                slices
                    .entry((crate::meta::namespace(sl), svc))
                    .or_default()
                    .push(sl);
            }
        }
        Index {
            services: s.services.iter().map(|o| (nn(o), &**o)).collect(),
            secrets: s.secrets.iter().map(|o| (nn(o), &**o)).collect(),
            namespaces: s
                .namespaces
                .iter()
                .map(|o| (meta_str(o, "name"), &**o))
                .collect(),
            pods: s.pods.iter().map(|o| (nn(o), &**o)).collect(),
            slices,
            endpoints: s.endpoints.iter().map(|o| (nn(o), &**o)).collect(),
        }
    }
}

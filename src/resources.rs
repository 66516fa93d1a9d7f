//! The kinds the sandbox serves: group, version, plural, scope and short names.
//!
//! This table is the single source for discovery (`/api`, `/apis`), URL routing, the store's keys
//! and kubectl's kind → resource mapping. Scopes and short names follow Kubernetes, Gateway API and
//! AGC's CRDs, because kubectl relies on them (a missing `namespaced` silently makes a kind
//! cluster-scoped; see `../shared/reference/kubectl-contract.md` §2).

/// One served resource type.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// Versions served, preferred first. Objects are stored once whatever version wrote them.
    pub versions: &'static [&'static str],
    pub kind: &'static str,
    /// Lower-case plural used in URLs, e.g. `httproutes`.
    pub plural: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    /// Whether the kind has a `status` subresource (status is then ignored on main-resource writes).
    pub has_status: bool,
    /// Whether kubectl knows the Go type and so sends strategic merge patches for it.
    pub builtin: bool,
    /// Discovery categories (`kubectl get all` uses `all`).
    pub categories: &'static [&'static str],
}

impl ResourceDef {
    /// `gateways.gateway.networking.k8s.io`, or `pods` for the core group: the name Kubernetes
    /// uses in error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Gateway.gateway.networking.k8s.io`, or `Service` for the core group: the kind as
    /// Kubernetes names it in "is invalid" messages.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `apps/v1` or `v1` for the given version.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The preferred `apiVersion`.
    pub fn preferred_api_version(&self) -> String {
        self.api_version(self.versions[0])
    }

    /// Stable identifier used as the store's key prefix: `group/plural` (`/pods` for core).
    pub fn id(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    pub fn serves_version(&self, version: &str) -> bool {
        self.versions.contains(&version)
    }
}

impl ResourceDef {
    /// A kind of `group`/v1 that kubectl knows the Go type of: namespaced, no status, no short
    /// names, no categories. The setters below state what a kind has besides, so each table
    /// row says only how it differs.
    const fn builtin(group: &'static str, kind: &'static str, plural: &'static str) -> Self {
        ResourceDef {
            group,
            versions: &["v1"],
            kind,
            plural,
            namespaced: true,
            short_names: &[],
            has_status: false,
            builtin: true,
            categories: &[],
        }
    }
    /// A CRD-defined kind (kubectl sends it merge patches): namespaced, with a status.
    const fn custom(group: &'static str, kind: &'static str, plural: &'static str) -> Self {
        let mut def = Self::builtin(group, kind, plural);
        def.builtin = false;
        def.has_status = true;
        def
    }
    const fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }
    const fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    const fn status(mut self, has_status: bool) -> Self {
        self.has_status = has_status;
        self
    }
    const fn versions(mut self, versions: &'static [&'static str]) -> Self {
        self.versions = versions;
        self
    }
    const fn categories(mut self, categories: &'static [&'static str]) -> Self {
        self.categories = categories;
        self
    }
}

pub const CORE: &str = "";
pub const APPS: &str = "apps";
pub const DISCOVERY: &str = "discovery.k8s.io";
pub const GATEWAY: &str = "gateway.networking.k8s.io";
pub const ALB: &str = "alb.networking.azure.io";
pub const APIEXTENSIONS: &str = "apiextensions.k8s.io";

const ALL: &[&str] = &["all"];
const GATEWAY_API: &[&str] = &["gateway-api"];
const V1_V1BETA1: &[&str] = &["v1", "v1beta1"];

/// Every served kind, one a row. Order is the order of discovery output.
#[rustfmt::skip]
pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef::builtin(CORE, "Namespace", "namespaces").cluster_scoped().short(&["ns"]).status(true),
    ResourceDef::builtin(CORE, "Pod", "pods").short(&["po"]).status(true).categories(ALL),
    ResourceDef::builtin(CORE, "Service", "services").short(&["svc"]).status(true).categories(ALL),
    ResourceDef::builtin(CORE, "Endpoints", "endpoints").short(&["ep"]),
    ResourceDef::builtin(CORE, "Secret", "secrets"),
    ResourceDef::builtin(CORE, "ConfigMap", "configmaps").short(&["cm"]),
    ResourceDef::builtin(CORE, "Event", "events").short(&["ev"]),
    ResourceDef::builtin(APPS, "Deployment", "deployments").short(&["deploy"]).status(true).categories(ALL),
    ResourceDef::builtin(APPS, "ReplicaSet", "replicasets").short(&["rs"]).status(true).categories(ALL),
    ResourceDef::builtin(DISCOVERY, "EndpointSlice", "endpointslices"),
    ResourceDef::custom(GATEWAY, "GatewayClass", "gatewayclasses").cluster_scoped().short(&["gc"]).versions(V1_V1BETA1).categories(GATEWAY_API),
    ResourceDef::custom(GATEWAY, "Gateway", "gateways").short(&["gtw"]).versions(V1_V1BETA1).categories(GATEWAY_API),
    ResourceDef::custom(GATEWAY, "HTTPRoute", "httproutes").versions(V1_V1BETA1).categories(GATEWAY_API),
    ResourceDef::custom(GATEWAY, "GRPCRoute", "grpcroutes").categories(GATEWAY_API),
    ResourceDef::custom(GATEWAY, "ReferenceGrant", "referencegrants").short(&["refgrant"]).status(false).versions(&["v1beta1"]).categories(GATEWAY_API),
    ResourceDef::custom(ALB, "ApplicationLoadBalancer", "applicationloadbalancers").short(&["alb"]),
    ResourceDef::custom(ALB, "HealthCheckPolicy", "healthcheckpolicies").short(&["hcp"]),
    ResourceDef::custom(ALB, "RoutePolicy", "routepolicies"),
    ResourceDef::custom(ALB, "FrontendTLSPolicy", "frontendtlspolicies"),
    ResourceDef::custom(ALB, "BackendTLSPolicy", "backendtlspolicies"),
    ResourceDef::custom(ALB, "BackendLoadBalancingPolicy", "backendloadbalancingpolicies"),
    ResourceDef::custom(ALB, "WebApplicationFirewallPolicy", "webapplicationfirewallpolicies").short(&["wafpolicy"]),
    ResourceDef::builtin(APIEXTENSIONS, "CustomResourceDefinition", "customresourcedefinitions").cluster_scoped().short(&["crd", "crds"]).status(true),
];

// === kinds defined at run time (CustomResourceDefinitions) ===

/// Kinds added by CustomResourceDefinitions. Their definitions are leaked so that everything
/// holding a `&'static ResourceDef` keeps working; a CRD re-applied unchanged reuses its entry,
/// so only changed or new definitions allocate.
static DYNAMIC: std::sync::RwLock<Vec<&'static ResourceDef>> = std::sync::RwLock::new(Vec::new());

fn dynamic() -> std::sync::RwLockReadGuard<'static, Vec<&'static ResourceDef>> {
    DYNAMIC.read().unwrap_or_else(|e| e.into_inner())
}

/// Every served kind: the built-in table, then the kinds CRDs define.
pub fn all() -> Vec<&'static ResourceDef> {
    RESOURCES.iter().chain(dynamic().iter().copied()).collect()
}

/// Whether `res` comes from the built-in table (not from a CRD).
pub fn is_static(res: &ResourceDef) -> bool {
    RESOURCES.iter().any(|r| std::ptr::eq(r, res))
}

/// Serves `def` (replacing a kind of the same group and plural); returns the served entry.
pub fn register(def: ResourceDef) -> &'static ResourceDef {
    let mut list = DYNAMIC.write().unwrap_or_else(|e| e.into_inner());
    if let Some(same) = list.iter().find(|r| ***r == def) {
        return same;
    }
    let leaked: &'static ResourceDef = Box::leak(Box::new(def));
    list.retain(|r| !(r.group == leaked.group && r.plural == leaked.plural));
    list.push(leaked);
    leaked
}

/// Stops serving the kind a CRD defined.
pub fn unregister(group: &str, plural: &str) {
    let mut list = DYNAMIC.write().unwrap_or_else(|e| e.into_inner());
    list.retain(|r| !(r.group == group && r.plural == plural));
}

/// A `&'static str` for a CRD's names (leaked: CRDs are few and rarely change).
pub fn leak_str(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// The kind a CustomResourceDefinition defines (apiextensions.k8s.io/v1): its group, served
/// versions (the storage version first), names, scope and whether it has a status
/// subresource.
pub fn def_from_crd(crd: &serde_json::Value) -> Result<ResourceDef, String> {
    let s = |p: &str| {
        crd.pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
    };
    let (group, plural, kind) = (
        s("/spec/group"),
        s("/spec/names/plural"),
        s("/spec/names/kind"),
    );
    if group.is_empty() || plural.is_empty() || kind.is_empty() {
        return Err("spec.group, spec.names.plural and spec.names.kind are required".into());
    }
    let versions: Vec<&serde_json::Value> = crd
        .pointer("/spec/versions")
        .and_then(serde_json::Value::as_array)
        .map(|v| v.iter().filter(|v| v["served"] == true).collect())
        .unwrap_or_default();
    let mut names: Vec<&'static str> = Vec::new();
    let mut has_status = false;
    for v in versions
        .iter()
        .filter(|v| v["storage"] == true)
        .chain(versions.iter().filter(|v| v["storage"] != true))
    {
        if let Some(n) = v["name"].as_str() {
            names.push(leak_str(n));
        }
        if v["storage"] == true {
            has_status = v.pointer("/subresources/status").is_some();
        }
    }
    if names.is_empty() {
        return Err("no served version".into());
    }
    let list = |p: &str| -> &'static [&'static str] {
        let items: Vec<&'static str> = crd
            .pointer(p)
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(|x| x.as_str()).map(leak_str).collect())
            .unwrap_or_default();
        Box::leak(items.into_boxed_slice())
    };
    Ok(ResourceDef {
        group: leak_str(group),
        versions: Box::leak(names.into_boxed_slice()),
        kind: leak_str(kind),
        plural: leak_str(plural),
        namespaced: s("/spec/scope") != "Cluster",
        short_names: list("/spec/names/shortNames"),
        has_status,
        builtin: false,
        categories: list("/spec/names/categories"),
    })
}

/// Looks a resource up by group and URL plural, for any version it serves.
pub fn by_plural(group: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .or_else(|| {
            dynamic()
                .iter()
                .copied()
                .find(|r| r.group == group && r.plural == plural)
        })
}

/// Looks a resource up by `apiVersion` and `kind`, as written in a manifest.
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    let (group, version) = split_api_version(api_version);
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind && r.serves_version(version))
        .or_else(|| {
            dynamic()
                .iter()
                .copied()
                .find(|r| r.group == group && r.kind == kind && r.serves_version(version))
        })
}

/// Looks a resource up by kind alone (first match), for callers that only know the kind.
pub fn by_kind(kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind)
        .or_else(|| dynamic().iter().copied().find(|r| r.kind == kind))
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The groups served, each with its versions, in discovery order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for r in all().into_iter().filter(|r| !r.group.is_empty()) {
        let entry = match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some(e) => e,
            None => {
                out.push((r.group, Vec::new()));
                out.last_mut().expect("just pushed")
            }
        };
        for v in r.versions {
            if !entry.1.contains(v) {
                entry.1.push(v);
            }
        }
    }
    out
}

/// The resources served under one group/version.
pub fn in_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    all()
        .into_iter()
        .filter(move |r| r.group == group && r.serves_version(version))
}

/// Well-known resource handles, so callers do not repeat string lookups.
pub mod kinds {
    use super::{by_plural, ResourceDef, ALB, APIEXTENSIONS, APPS, CORE, DISCOVERY, GATEWAY};

    fn get(group: &str, plural: &str) -> &'static ResourceDef {
        by_plural(group, plural).expect("resource is in the static table")
    }

    /// One handle per `plural: GROUP`, named after the plural.
    macro_rules! handles {
        ($($plural:ident: $group:expr),* $(,)?) => {
            $(pub fn $plural() -> &'static ResourceDef {
                get($group, stringify!($plural))
            })*
        };
    }

    handles! {
        namespaces: CORE,
        pods: CORE,
        services: CORE,
        endpoints: CORE,
        secrets: CORE,
        events: CORE,
        deployments: APPS,
        replicasets: APPS,
        customresourcedefinitions: APIEXTENSIONS,
        endpointslices: DISCOVERY,
        gatewayclasses: GATEWAY,
        gateways: GATEWAY,
        httproutes: GATEWAY,
        grpcroutes: GATEWAY,
        referencegrants: GATEWAY,
        applicationloadbalancers: ALB,
        healthcheckpolicies: ALB,
        routepolicies: ALB,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_api_version() {
        for r in RESOURCES {
            for v in r.versions {
                let found = by_api_version_kind(&r.api_version(v), r.kind).unwrap();
                assert_eq!(found, r);
            }
        }
    }

    #[test]
    fn qualified_names_follow_kubernetes() {
        assert_eq!(kinds::pods().qualified_plural(), "pods");
        assert_eq!(
            kinds::gateways().qualified_plural(),
            "gateways.gateway.networking.k8s.io"
        );
        assert_eq!(kinds::deployments().qualified_kind(), "Deployment.apps");
        assert_eq!(kinds::services().qualified_kind(), "Service");
    }

    #[test]
    fn gateway_group_serves_v1_and_v1beta1() {
        let groups = groups();
        let gw = groups.iter().find(|(g, _)| *g == GATEWAY).unwrap();
        assert_eq!(gw.1, vec!["v1", "v1beta1"]);
        assert!(in_group_version(GATEWAY, "v1beta1").any(|r| r.kind == "ReferenceGrant"));
        assert!(!in_group_version(GATEWAY, "v1").any(|r| r.kind == "ReferenceGrant"));
    }
}

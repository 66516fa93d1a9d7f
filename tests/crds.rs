//! CustomResourceDefinitions as objects, with the real kubectl: the sandbox's own kinds are
//! listed, a user's CRD (cert-manager's Certificate) becomes a served kind validated by its
//! schema, survives a restart, and deleting it deletes its objects.

mod support;

use support::*;

const CERT: &str = "apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: web, namespace: default}
spec:
  secretName: web-tls
  issuerRef: {name: letsencrypt}
  dnsNames: [contoso.com]
  renewBeforePercentage: 25
  secretTemplate:
    labels: {team: web}
";

/// Kinds defined by CRDs are served process-wide (`resources::register`), and each sandbox's
/// reconciler serves exactly its own store's CRDs: two sandboxes with CRDs in one test process
/// would undo each other's kinds, so these tests take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn fixture() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cert-manager.io_certificates.yaml")
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_serves_its_kind_until_it_is_deleted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sb = Sandbox::start().await;
    let crds = sb.kubectl(&["get", "crds", "-o", "name"]).success();
    assert!(
        crds.contains(
            "customresourcedefinition.apiextensions.k8s.io/gateways.gateway.networking.k8s.io"
        ),
        "{crds}"
    );
    assert!(
        crds.contains("healthcheckpolicies.alb.networking.azure.io"),
        "{crds}"
    );

    sb.kubectl(&["apply", "-f", &fixture()]).success();
    sb.kubectl(&[
        "wait",
        "--for",
        "condition=established",
        "crd/certificates.cert-manager.io",
        "--timeout=10s",
    ])
    .success();
    let out = sb.kubectl_stdin(&["apply", "-f", "-"], CERT).success();
    assert!(
        out.contains("certificate.cert-manager.io/web created"),
        "{out}"
    );
    let listed = sb.kubectl(&["get", "certs", "-o", "name"]).success();
    assert_eq!(listed.trim(), "certificate.cert-manager.io/web");
    sb.kubectl(&[
        "patch",
        "certificate",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"commonName":"contoso.com"}}"#,
    ])
    .success();
    let cn = sb
        .kubectl(&[
            "get",
            "certificate",
            "web",
            "-o",
            "jsonpath={.spec.commonName}",
        ])
        .success();
    assert_eq!(cn, "contoso.com");
    let label = sb
        .kubectl(&[
            "get",
            "certificate",
            "web",
            "-o",
            "jsonpath={.spec.secretTemplate.labels.team}",
        ])
        .success();
    assert_eq!(label, "web");
    let r = http(
        "PATCH",
        &sb.url("/apis/cert-manager.io/v1/namespaces/default/certificates/web"),
        "application/merge-patch+json",
        r#"{"spec":{"renewBeforePercentage":"lots"}}"#,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    // The CRD's schema is enforced: unknown fields and missing required ones.
    let bad = sb.kubectl_stdin(
        &["apply", "-f", "-"],
        &CERT.replace("secretName", "secretNme"),
    );
    assert!(!bad.ok);
    assert!(
        bad.stderr
            .contains(r#"strict decoding error: unknown field "spec.secretNme""#),
        "{}",
        bad.stderr
    );
    let r = post_json(
        &sb.url("/apis/cert-manager.io/v1/namespaces/default/certificates"),
        &serde_json::json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "noissuer"}, "spec": {"secretName": "x"}}),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text().contains("spec.issuerRef: Required value"),
        "{}",
        r.text()
    );

    // A CRD kube-apiserver refuses is refused, and the sandbox's own CRDs stay.
    let wrong = std::fs::read_to_string(fixture()).unwrap().replace(
        "name: certificates.cert-manager.io",
        "name: certs.cert-manager.io",
    );
    let out = sb.kubectl_stdin(&["apply", "-f", "-"], &wrong);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains(r#"must be spec.names.plural+"."+spec.group"#),
        "{}",
        out.stderr
    );
    let out = sb.kubectl(&["delete", "crd", "gateways.gateway.networking.k8s.io"]);
    assert!(out.stderr.contains("(Forbidden)"), "{}", out.stderr);

    // Custom resources survive a restart.
    let dir = sb.stop_keep_data().await;
    let sb = Sandbox::restart(dir).await;
    let listed = sb.kubectl(&["get", "certs", "-o", "name"]).success();
    assert_eq!(listed.trim(), "certificate.cert-manager.io/web");

    // Deleting the CRD deletes its objects and the kind.
    sb.kubectl(&["delete", "crd", "certificates.cert-manager.io"])
        .success();
    let gone = sb.url("/apis/cert-manager.io/v1/namespaces/default/certificates");
    assert_eq!(get(&gone).await.status, 404);
    sb.kubectl(&["apply", "-f", &fixture()]).success();
    let listed = sb.kubectl(&["get", "certs", "-o", "name"]).success();
    assert_eq!(listed.trim(), "", "the old objects went with the CRD");
    sb.stop().await;
}

const WIDGETS: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-preserve-unknown-fields: true
";

/// A CRD object is decoded into apiextensions' Go types as kube-apiserver does: a typo'd field
/// is a strict decoding error (400) for kubectl, a warning under fieldValidation=Warn; real CRDs
/// (the sandbox's own, re-applied) decode cleanly; `kubectl explain crd` reads the served schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_is_decoded_strictly() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sb = Sandbox::start().await;
    for (typo, field) in [
        ("  versions:\n", "  vesions:\n"),
        ("names: {plural: widgets", "names: {plurl: widgets"),
    ] {
        let out = sb.kubectl_stdin(&["apply", "-f", "-"], &WIDGETS.replace(typo, field));
        assert!(!out.ok, "{out:?}");
        let path = if field.contains("vesions") {
            "spec.vesions"
        } else {
            "spec.names.plurl"
        };
        let want = format!(
            "Error from server (BadRequest): error when creating \"STDIN\": CustomResourceDefinition in version \"v1\" cannot be handled as a CustomResourceDefinition: strict decoding error: unknown field \"{path}\""
        );
        assert!(out.stderr.contains(&want), "{}", out.stderr);
    }
    let deep = WIDGETS.replace(
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-preserve-unknown-field",
    );
    let out = sb.kubectl_stdin(&["apply", "-f", "-"], &deep);
    assert!(
        out.stderr.contains(r#"unknown field "spec.versions[0].schema.openAPIV3Schema.properties.spec.x-kubernetes-preserve-unknown-field""#),
        "{}",
        out.stderr
    );
    let url = sb.url("/apis/apiextensions.k8s.io/v1/customresourcedefinitions");
    let mut crd: serde_json::Value = serde_yaml::from_str(WIDGETS).unwrap();
    crd["spec"]["names"]["plurl"] = "widgets".into();
    let body = serde_json::to_vec(&crd).unwrap();
    let ct = "application/json";
    let r = http(
        "POST",
        &format!("{url}?fieldValidation=Strict"),
        ct,
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = http("POST", &format!("{url}?fieldValidation=Warn"), ct, body).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let warnings: Vec<_> = r.headers.get_all("warning").iter().collect();
    assert_eq!(warnings, [r#"299 - "unknown field \"spec.names.plurl\"""#]);
    assert!(r.json()["spec"]["names"].get("plurl").is_none(), "dropped");

    // Real CRDs, the sandbox's own and cert-manager's, have no unknown field.
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/apiserver/schemas");
    for f in [
        "gateway.networking.k8s.io_httproutes.yaml",
        "alb.networking.azure.io_healthcheckpolicies.yaml",
    ] {
        let out = sb.kubectl(&["apply", "-f", &schemas.join(f).display().to_string()]);
        assert!(
            out.ok && !out.stderr.contains("unknown field"),
            "{f}: {out:?}"
        );
    }
    let out = sb.kubectl(&["apply", "-f", &fixture()]);
    assert!(out.ok && !out.stderr.contains("unknown field"), "{out:?}");

    let explain = sb.kubectl(&["explain", "crd.spec.names"]).success();
    for want in [
        "GROUP:      apiextensions.k8s.io",
        "KIND:       CustomResourceDefinition",
        "FIELD: names <CustomResourceDefinitionNames>",
        "plural\t<string> -required-",
    ] {
        assert!(explain.contains(want), "{want:?} in {explain}");
    }
    let explain = sb
        .kubectl(&[
            "explain",
            "crd.spec.versions.schema.openAPIV3Schema.properties.items",
        ])
        .success();
    assert!(explain.contains("<JSONSchemaPropsOrArray>"), "{explain}");
    sb.stop().await;
}

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

    sb.kubectl(&["apply", "-f", &cert_manager_crd()]).success();
    sb.wait_established("certificates.cert-manager.io");
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
    let cn = sb.jsonpath(&["certificate", "web"], "{.spec.commonName}");
    assert_eq!(cn, "contoso.com");
    let label = sb.jsonpath(
        &["certificate", "web"],
        "{.spec.secretTemplate.labels.team}",
    );
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
    let wrong = std::fs::read_to_string(cert_manager_crd())
        .unwrap()
        .replace(
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
    sb.kubectl(&["apply", "-f", &cert_manager_crd()]).success();
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
    let out = sb.kubectl(&["apply", "-f", &cert_manager_crd()]);
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

/// The text under `column` in row `row` of kubectl's table (columns start where their header
/// does).
fn cell(out: &str, row: usize, column: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let header = lines[0];
    let start = header.find(column).expect("column");
    let end = header[start..]
        .find(|c: char| c.is_whitespace())
        .and_then(|w| {
            header[start + w..]
                .find(|c: char| !c.is_whitespace())
                .map(|n| start + w + n)
        })
        .unwrap_or(usize::MAX);
    let line = lines[row];
    line.get(start..end.min(line.len()))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// `kubectl get` of custom resources prints the CRD's `additionalPrinterColumns` as
/// apiextensions-apiserver's table convertor does: Name first, priority > 0 only with `-o wide`,
/// a missing value as `<none>`, a date as an age; a CRD without columns shows Name and Age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printer_columns_drive_kubectl_get() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sb = Sandbox::start().await;
    sb.kubectl(&["apply", "-f", &cert_manager_crd()]).success();
    sb.wait_established("certificates.cert-manager.io");
    sb.kubectl_stdin(&["apply", "-f", "-"], CERT).success();
    let rows = |out: String| -> Vec<Vec<String>> {
        out.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    };
    // A column that finds nothing is a null cell, which kubectl leaves blank.
    let out = sb.kubectl(&["get", "certificates"]).success();
    let got = rows(out.clone());
    assert_eq!(got[0], ["NAME", "READY", "SECRET", "AGE"], "{got:?}");
    assert_eq!(got[1][..2], ["web", "web-tls"], "{got:?}");
    assert!(got[1][2].ends_with('s'), "an age: {got:?}");
    assert_eq!(cell(&out, 1, "READY"), "", "{out}");
    assert_eq!(cell(&out, 1, "SECRET"), "web-tls", "{out}");

    let status = r#"{"status":{"conditions":[{"type":"Issuing","status":"False"},{"type":"Ready","status":"True","reason":"Ready","message":"Certificate is up to date and has not expired"}]}}"#;
    let r = http(
        "PATCH",
        &sb.url("/apis/cert-manager.io/v1/namespaces/default/certificates/web/status"),
        "application/merge-patch+json",
        status,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = rows(sb.kubectl(&["get", "certificates"]).success());
    assert_eq!(got[1][..3], ["web", "True", "web-tls"], "{got:?}");
    let wide = rows(sb.kubectl(&["get", "certificates", "-o", "wide"]).success());
    assert_eq!(
        wide[0],
        ["NAME", "READY", "SECRET", "ISSUER", "AGE"],
        "{wide:?}"
    );
    assert_eq!(
        wide[1][..4],
        ["web", "True", "web-tls", "letsencrypt"],
        "{wide:?}"
    );
    let one = rows(sb.kubectl(&["get", "certificate", "web"]).success());
    assert_eq!(one[1][..3], ["web", "True", "web-tls"], "{one:?}");

    // No columns declared: Name and Age.
    sb.kubectl_stdin(&["apply", "-f", "-"], WIDGETS).success();
    sb.wait_established("widgets.example.com");
    sb.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: default}\nspec: {size: 1}\n",
    )
    .success();
    let got = rows(sb.kubectl(&["get", "widgets"]).success());
    assert_eq!(got[0], ["NAME", "AGE"], "{got:?}");
    assert_eq!(got[1][0], "w1", "{got:?}");

    // The sandbox's own kinds keep their columns (their CRDs declare none).
    sb.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: default}\nspec:\n  gatewayClassName: azure-alb-external\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n",
    )
    .success();
    let got = rows(sb.kubectl(&["get", "gateways"]).success());
    assert_eq!(
        got[0],
        ["NAME", "CLASS", "ADDRESS", "PROGRAMMED", "AGE"],
        "{got:?}"
    );
    // Until their CRD declares columns, as upstream's HTTPRoute CRD does: then they print.
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/apiserver/schemas/gateway.networking.k8s.io_httproutes.yaml");
    let mut crd: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    crd["spec"]["versions"][0]["additionalPrinterColumns"] = serde_json::json!([
        {"jsonPath": ".spec.hostnames", "name": "Hostnames", "type": "string"},
        {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}]);
    sb.kubectl_stdin(&["apply", "-f", "-"], &crd.to_string())
        .success();
    sb.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: default}\nspec:\n  parentRefs: [{name: gw}]\n  hostnames: [contoso.com, www.contoso.com]\n",
    )
    .success();
    let got = rows(sb.kubectl(&["get", "httproutes"]).success());
    assert_eq!(got[0], ["NAME", "HOSTNAMES", "AGE"], "{got:?}");
    assert_eq!(
        got[1][..2],
        ["r", r#"["contoso.com","www.contoso.com"]"#],
        "{got:?}"
    );
    sb.stop().await;
}

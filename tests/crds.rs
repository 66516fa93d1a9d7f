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

fn fixture() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cert-manager.io_certificates.yaml")
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_serves_its_kind_until_it_is_deleted() {
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

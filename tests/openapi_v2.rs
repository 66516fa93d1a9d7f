//! `/openapi/v2` with the real kubectl: `explain --output=plaintext-openapiv2` reads built-in,
//! Gateway API and user-CRD kinds from the protobuf document client-go fetches; kubectl 1.27 finds
//! `fieldValidation` there and leaves validation to the server; the document follows CRDs being
//! applied and deleted (new ETag, 304 for a current one).

mod support;

use support::*;

/// A user CRD changes the process-wide set of served kinds, so the tests here take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

async fn v2(sb: &Sandbox, headers: &[(&str, &str)]) -> Resp {
    http_with("GET", &sb.url("/openapi/v2"), headers, bytes::Bytes::new()).await
}

fn etag(r: &Resp) -> String {
    let e = r.headers.get("etag").expect("an ETag");
    e.to_str().expect("ASCII").to_string()
}

/// Every kubectl here (the PATH's, and 1.27 and 1.33 when installed) explains fields from v2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_reads_openapi_v2() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sb = Sandbox::start().await;
    let port = [
        "explain",
        "gateway.spec.listeners.port",
        "--output=plaintext-openapiv2",
    ];
    let containers = [
        "explain",
        "pods.spec.containers",
        "--output=plaintext-openapiv2",
    ];
    let mut runs = vec![sb.kubectl(&port), sb.kubectl(&containers)];
    if let Some(k) = versioned_kubectl(27) {
        runs.push(sb.kubectl_with(&k, &port, None));
    }
    if let Some(k) = versioned_kubectl(33) {
        runs.push(sb.kubectl_with(&k, &containers, None));
    }
    for (i, run) in runs.into_iter().enumerate() {
        let out = run.success();
        let want: &[&str] = if i % 2 == 0 {
            &[
                "KIND:     Gateway",
                "port <integer>",
                "Port is the network port",
            ]
        } else {
            &["KIND:     Pod", "containers <[]Object>", "image\t<string>"]
        };
        for w in want {
            assert!(out.contains(w), "{w:?} in\n{out}");
        }
    }
    let svc = sb
        .kubectl(&[
            "explain",
            "svc.spec.ports.targetPort",
            "--output=plaintext-openapiv2",
        ])
        .success();
    assert!(svc.contains("targetPort <string>"), "{svc}");
    sb.stop().await;
}

/// kubectl 1.27 reads only v2 for its `fieldValidation` check: finding the parameter, it sends
/// the write and the server's strict decoding answers (kubectl's own validation would have
/// refused first, with "error validating data").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_127_leaves_validation_to_the_server() {
    let Some(k) = versioned_kubectl(27) else {
        eprintln!("kubectl 1.27 is not installed here; nothing to check");
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let sb = Sandbox::start().await;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\nbogus: 1\n";
    let out = sb.kubectl_with(&k, &["apply", "-f", "-"], Some(cm));
    assert!(!out.ok);
    assert!(
        out.stderr.contains("Error from server (BadRequest)")
            && out
                .stderr
                .contains(r#"strict decoding error: unknown field "bogus""#),
        "{}",
        out.stderr
    );
    let gw = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: default}\nspec:\n  gatewayClassName: azure-alb-external\n  listeners: [{name: http, port: 80, protocol: HTTP}]\n";
    let out = sb
        .kubectl_with(&k, &["apply", "-f", "-"], Some(gw))
        .success();
    assert!(
        out.contains("gateway.gateway.networking.k8s.io/g created"),
        "{out}"
    );
    sb.stop().await;
}

/// A user's CRD (cert-manager's Certificate) appears in v2 once applied, under kube's name, and
/// goes when deleted; each change is a new ETag, and the current one gets 304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_crd_appears_in_v2() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sb = Sandbox::start().await;
    let json = [("accept", "application/json")];
    let before = v2(&sb, &json).await;
    assert_eq!(before.status, 200);
    let old = etag(&before);
    let def = "io.cert-manager.v1.Certificate";
    assert!(before.json()["definitions"][def].is_null());
    let fresh = v2(&sb, &[("accept", PROTOBUF), ("if-none-match", &old)]).await;
    assert_eq!(fresh.status, 304);

    sb.kubectl(&["apply", "-f", &cert_manager_crd()]).success();
    sb.wait_established("certificates.cert-manager.io");
    let after = v2(
        &sb,
        &[("accept", "application/json"), ("if-none-match", &old)],
    )
    .await;
    assert_eq!(after.status, 200, "a changed document is sent whole");
    assert_ne!(etag(&after), old);
    let doc = after.json();
    let cert = &doc["definitions"][def];
    assert_eq!(
        cert["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "cert-manager.io", "kind": "Certificate", "version": "v1"}])
    );
    assert_eq!(
        cert["properties"]["metadata"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
    let patch = &doc["paths"]
        ["/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}"]["patch"];
    assert!(patch["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "fieldValidation")));

    let pb = v2(&sb, &[("accept", PROTOBUF)]).await;
    assert_eq!(
        pb.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    );
    let explain = [
        "explain",
        "certificate.spec.secretName",
        "--output=plaintext-openapiv2",
    ];
    let out = sb.kubectl(&explain).success();
    assert!(
        out.contains("KIND:     Certificate") && out.contains("secretName <string>"),
        "{out}"
    );
    if let Some(k) = versioned_kubectl(27) {
        let out = sb.kubectl_with(&k, &explain, None).success();
        assert!(out.contains("secretName <string>"), "{out}");
    }

    sb.kubectl(&["delete", "crd", "certificates.cert-manager.io"])
        .success();
    let mut gone = false;
    for _ in 0..50 {
        if v2(&sb, &json).await.json()["definitions"][def].is_null() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "{def} still in /openapi/v2 after its CRD was deleted");
    sb.stop().await;
}

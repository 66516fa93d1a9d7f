//! Scenario parsing and helpers.

use super::dataplane::{backend_of, check_reply, glob};
use super::model::HttpExpect;
use super::net;
use super::parse::parse_step;
use serde_json::json;

#[test]
fn pods_map_to_their_deployment() {
    assert_eq!(backend_of("backend-v1-7b9d8c6f5d-x2k4q"), "backend-v1");
    assert_eq!(backend_of("solo"), "solo");
}

#[test]
fn globs() {
    assert!(glob("backend-v1-*", "backend-v1-abc-def"));
    assert!(!glob("backend-v1-*", "backend-v2-abc-def"));
    assert!(glob("exact", "exact"));
}

#[test]
fn steps_parse_with_readable_errors() {
    let s = parse_step(1, &json!({"apply": "../manifests/websocket"})).unwrap();
    assert_eq!(s.label, "apply ../manifests/websocket");
    let s = parse_step(
        2,
        &json!({"http": {"gateway": "gateway-01", "host": "contoso.com", "path": "/health"}}),
    )
    .unwrap();
    assert_eq!(s.label, "http GET contoso.com/health");
    let e = parse_step(3, &json!({"htp": {}})).unwrap_err();
    assert!(e.contains("unknown step `htp`"), "{e}");
    let e = parse_step(4, &json!({"wait": {"ref": "gateway/g", "conditon": "x"}})).unwrap_err();
    assert!(e.contains("unknown field `conditon`"), "{e}");
    let e = parse_step(5, &json!({"wait": {"ref": "gizmo/g"}})).unwrap_err();
    assert!(e.contains("unknown kind"), "{e}");
}

#[test]
fn replies_are_checked_with_a_readable_diff() {
    let r = net::Reply {
        status: 503,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: "no healthy upstream".into(),
    };
    let e = HttpExpect {
        status: Some(200),
        ..Default::default()
    };
    assert_eq!(
        check_reply(&e, &r).unwrap_err(),
        "expected status 200, got 503; body: no healthy upstream"
    );
    let e = HttpExpect {
        status: Some(503),
        body: Some("no healthy upstream".into()),
        ..Default::default()
    };
    assert!(check_reply(&e, &r).is_ok());
}

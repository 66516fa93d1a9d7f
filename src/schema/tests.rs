use super::*;
use serde_json::json;

fn gateway_like() -> Schema {
    let s = json!({
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["listeners"],
                "properties": {
                    "listeners": {
                        "type": "array", "maxItems": 2,
                        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object", "required": ["name", "port"],
                            "properties": {
                                "name": {"type": "string", "pattern": "^[a-z]+$"},
                                "port": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 65535},
                                "protocol": {"type": "string", "enum": ["HTTP", "HTTPS"], "default": "HTTP"},
                                "allowedRoutes": {
                                    "type": "object", "default": {"namespaces": {"from": "Same"}},
                                    "properties": {"namespaces": {"type": "object", "properties": {
                                        "from": {"type": "string", "default": "Same"},
                                        "selector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                                    }}}
                                }
                            }
                        },
                        "x-kubernetes-validations": [{"rule": "true", "message": "listeners ok"}]
                    },
                    "options": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
                    "weight": {"type": "number", "exclusiveMinimum": true, "minimum": 0},
                    "port": {"x-kubernetes-int-or-string": true},
                    "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
                }
            }
        }
    });
    Schema::from_openapi(&s).expect("compiles")
}

fn gw() -> Value {
    json!({"apiVersion": "x/v1", "kind": "G", "metadata": {"name": "g", "labels": {"a": "b"}},
           "spec": {"listeners": [{"name": "http", "port": 80}]}})
}

/// Unknown fields anywhere, metadata checked as ObjectMeta, preserve-unknown honoured.
#[test]
fn unknown_fields_paths() {
    let s = gateway_like();
    let mut o = gw();
    o["spec"]["listners"] = json!([]);
    o["spec"]["listeners"][0]["alowedRoutes"] = json!({});
    o["spec"]["listeners"][0]["allowedRoutes"] =
        json!({"namespaces": {"selector": {"anything": 1}}});
    o["metadata"]["lables"] = json!({});
    o["metadata"]["managedFields"] = json!([{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}]);
    o["status"] = json!({});
    assert_eq!(
        s.unknown_fields(&o),
        [
            "metadata.lables",
            "spec.listeners[0].alowedRoutes",
            "spec.listners",
            "status"
        ]
    );
    assert_eq!(
        s.apply_unknown_fields(&o),
        [
            ".metadata.lables",
            ".spec.listeners[name=\"http\"].alowedRoutes",
            ".spec.listners",
            ".status"
        ]
    );
    let pruned = s.prune(&mut o);
    assert_eq!(pruned.len(), 4);
    assert!(s.unknown_fields(&o).is_empty());
    assert_eq!(
        o["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["selector"]["anything"],
        1
    );
}

/// Defaults go top-down and into what was defaulted.
#[test]
fn defaults_top_down() {
    let s = gateway_like();
    let mut o = gw();
    s.apply_defaults(&mut o);
    assert_eq!(o["spec"]["listeners"][0]["protocol"], "HTTP");
    assert_eq!(
        o["spec"]["listeners"][0]["allowedRoutes"],
        json!({"namespaces": {"from": "Same"}})
    );
    let mut o = gw();
    o["spec"]["listeners"][0]["protocol"] = Value::Null;
    s.apply_defaults(&mut o);
    assert_eq!(
        o["spec"]["listeners"][0]["protocol"], "HTTP",
        "null and not nullable is defaulted"
    );
}

/// kube-openapi's messages, duplicates after schema errors.
#[test]
fn validate_messages() {
    let s = gateway_like();
    let mut o = gw();
    o["spec"]["listeners"] = json!([
        {"name": "http", "port": 0, "protocol": "TCP"},
        {"name": "http", "port": "80"},
        {"name": "Bad", "port": 1}
    ]);
    o["spec"]["options"] = json!({"k": "long"});
    o["spec"]["weight"] = json!(0);
    o["spec"]["port"] = json!(true);
    o["spec"]["tags"] = json!(["a", "a"]);
    let got: Vec<String> = s
        .validate(&o)
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    assert_eq!(got, [
        "spec.listeners: Too many: 3: must have at most 2 items",
        "spec.listeners[0].port: Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1",
        r#"spec.listeners[0].protocol: Unsupported value: "TCP": supported values: "HTTP", "HTTPS""#,
        r#"spec.listeners[1].port: Invalid value: "string": spec.listeners[1].port in body must be of type integer: "string""#,
        r#"spec.listeners[2].name: Invalid value: "Bad": spec.listeners[2].name in body should match '^[a-z]+$'"#,
        "spec.options[k]: Too long: may not be more than 3 bytes",
        "spec.weight: Invalid value: 0: spec.weight in body should be greater than 0",
        r#"spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean""#,
        r#"spec.listeners[1]: Duplicate value: {"name":"http"}"#,
        r#"spec.tags[1]: Duplicate value: "a""#,
    ]);
    let mut missing = gw();
    missing["spec"] = json!({});
    let got: Vec<String> = s
        .validate(&missing)
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    assert_eq!(got, ["spec.listeners: Required value"]);
}

/// Rules are handed out with their value, parents first.
#[test]
fn validations_visited() {
    let s = gateway_like();
    assert!(s.has_validations());
    let mut seen = Vec::new();
    s.visit_validations(&gw(), &mut |r| {
        seen.push((
            r.field.to_string(),
            r.type_name.to_string(),
            r.message.to_string(),
        ))
    });
    assert_eq!(
        seen,
        [(
            "spec.listeners".to_string(),
            "array".to_string(),
            "listeners ok".to_string()
        )]
    );
}

/// `$ref`s into components, recursion, Go decode errors with struct names.
#[test]
fn components_and_decode_errors() {
    let defs = json!({
        "io.k8s.api.core.v1.Service": {"type": "object", "properties": {
            "metadata": {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.ServiceSpec"}], "description": "d"}}},
        "io.k8s.api.core.v1.ServiceSpec": {"type": "object", "properties": {
            "ports": {"type": "array", "items": {"$ref": "#/components/schemas/io.k8s.api.core.v1.ServicePort"}},
            "raw": {"type": "object"},
            "self": {"$ref": "#/components/schemas/io.k8s.api.core.v1.ServiceSpec"}}},
        "io.k8s.api.core.v1.ServicePort": {"type": "object", "properties": {
            "name": {"type": "string"}, "port": {"type": "integer", "format": "int32"}}}
    });
    let opts = Options {
        resource_root: false,
        empty_object_is_free_form: true,
    };
    let s = Schema::from_components(
        defs.as_object().unwrap(),
        "io.k8s.api.core.v1.Service",
        opts,
    )
    .unwrap();
    let o = json!({"metadata": {"name": "s", "namez": 1}, "spec": {"raw": {"x": 1}, "self": {"portz": 1}, "ports": [{"name": 12345, "port": 80}]}});
    assert_eq!(s.unknown_fields(&o), ["metadata.namez", "spec.self.portz"]);
    assert_eq!(
        s.decode_error(&o).as_deref(),
        Some("json: cannot unmarshal number into Go struct field ServicePort.spec.ports.name of type string")
    );
    let big = json!({"spec": {"ports": [{"port": 3_000_000_000u64}]}});
    assert_eq!(
        s.decode_error(&big).as_deref(),
        Some("json: cannot unmarshal number 3000000000 into Go struct field ServicePort.spec.ports.port of type int32")
    );
    let obj = json!({"spec": "x"});
    assert_eq!(
        s.decode_error(&obj).as_deref(),
        Some("json: cannot unmarshal string into Go struct field Service.spec of type v1.ServiceSpec")
    );
    assert!(matches!(
        Schema::from_components(defs.as_object().unwrap(), "nope", opts),
        Err(SchemaError::UnresolvedRef(_))
    ));
}

#[test]
fn messages_render_like_kube() {
    assert_eq!(
        render::strict_decoding_error(&["spec.a".into(), "spec.b".into()]),
        r#"strict decoding error: unknown field "spec.a", unknown field "spec.b""#
    );
    assert_eq!(
        render::smd_errors(&[".spec.a".into()]),
        ".spec.a: field not declared in schema"
    );
    assert_eq!(
        render::smd_errors(&[".a".into(), ".b".into()]),
        "errors:\n  .a: field not declared in schema\n  .b: field not declared in schema"
    );
}

#!/usr/bin/env python3
"""Regenerates src/apiserver/schemas/builtin.json and src/schema/objectmeta.json.

Source: the PyPI package kubernetes-validate 1.37.0, directory
kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json (Kubernetes v1.33.0's
OpenAPI definitions, converted by that package to JSON Schema 2020-12). This script converts them
back to the OpenAPI v3 form kube-apiserver serves under /openapi/v3 (components.schemas):
`type: [T, "null"]` -> `type: T`, `$ref` -> `#/components/schemas/...` (wrapped in `allOf` when the
reference carries a description or default, as kube-openapi does), IntOrString ->
`type: string, format: int-or-string`, Quantity -> `type: string, format: quantity`.
Only the served kinds and what they reference are kept.

    pip download --no-deps kubernetes-validate==1.37.0 && unzip kubernetes_validate-*.whl
    python3 scripts/gen-builtin-schemas.py kubernetes_validate/kubernetes-json-schema/v1.33.0-local/_definitions.json
"""
import json
import sys

KINDS = [
    "io.k8s.api.core.v1.Namespace",
    "io.k8s.api.core.v1.Pod",
    "io.k8s.api.core.v1.Service",
    "io.k8s.api.core.v1.Endpoints",
    "io.k8s.api.core.v1.Secret",
    "io.k8s.api.core.v1.ConfigMap",
    "io.k8s.api.core.v1.Event",
    "io.k8s.api.apps.v1.Deployment",
    "io.k8s.api.apps.v1.ReplicaSet",
    "io.k8s.api.discovery.v1.EndpointSlice",
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
]
META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def ref_name(r):
    return r.rsplit("/", 1)[-1]


def convert(v):
    if isinstance(v, list):
        return [convert(x) for x in v]
    if not isinstance(v, dict):
        return v
    out = {}
    for k, x in v.items():
        if k == "type" and isinstance(x, list):
            ts = [t for t in x if t != "null"]
            out["type"] = ts[0] if len(ts) == 1 else ts
        elif k == "$ref" and isinstance(x, str):
            out["$ref"] = "#/components/schemas/" + ref_name(x)
        elif k in ("$schema", "$id") and isinstance(x, str):
            continue
        else:
            out[k] = convert(x)
    if isinstance(out.get("$ref"), str) and len(out) > 1:
        ref = out.pop("$ref")
        out = {"allOf": [{"$ref": ref}], **out}
    return out


def refs(v, acc):
    if isinstance(v, dict):
        for k, x in v.items():
            # JSONSchemaProps has properties named `$ref` and `$schema` (schemas, not strings).
            if k == "$ref" and isinstance(x, str):
                acc.add(ref_name(x))
            else:
                refs(x, acc)
    elif isinstance(v, list):
        for x in v:
            refs(x, acc)


def closure(defs, roots):
    seen, todo = set(), list(roots)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        acc = set()
        refs(defs[n], acc)
        todo.extend(acc - seen)
    return seen


def main():
    defs = json.load(open(sys.argv[1]))["$defs"]
    special = {
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString": ("int-or-string"),
        "io.k8s.apimachinery.pkg.api.resource.Quantity": ("quantity"),
    }
    out = {}
    for name in sorted(closure(defs, KINDS)):
        d = defs[name]
        if name in special:
            s = {"description": d.get("description", ""), "type": "string", "format": special[name]}
        else:
            s = convert(d)
        out[name] = s
    root = "src/apiserver/schemas/builtin.json"
    with open(root, "w") as f:
        json.dump({"source": "kubernetes-validate 1.37.0, v1.33.0-local/_definitions.json", "schemas": out}, f, separators=(",", ":"), sort_keys=True)
    meta = {n: out[n] for n in sorted(closure(defs, [META]))}
    with open("src/schema/objectmeta.json", "w") as f:
        json.dump(meta, f, separators=(",", ":"), sort_keys=True)
    print(len(out), "definitions;", len(meta), "for ObjectMeta")


main()

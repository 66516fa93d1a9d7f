"""The official Python client against the sandbox's kubeconfig, unchanged: HTTPS with the
sandbox's CA, the bearer token, CRUD, patch, watch, a custom resource and an error.
Usage: python3 python_client.py KUBECONFIG (exits non-zero on any mismatch)."""
import sys
from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
names = [n.metadata.name for n in v1.list_namespace().items]
assert "default" in names, names
cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"), data={"a": "1"})
v1.create_namespaced_config_map("default", cm)
v1.patch_namespaced_config_map("py-cm", "default", {"data": {"b": "2"}})
assert v1.read_namespaced_config_map("py-cm", "default").data == {"a": "1", "b": "2"}
w = watch.Watch()
seen = None
for ev in w.stream(v1.list_namespaced_config_map, "default", timeout_seconds=5):
    seen = (ev["type"], ev["object"].metadata.name)
    w.stop()
assert seen == ("ADDED", "py-cm"), seen
try:
    v1.create_namespaced_config_map("default", cm)
    raise SystemExit("a duplicate create succeeded")
except client.exceptions.ApiException as e:
    assert e.status == 409, e.status
api = client.CustomObjectsApi()
gw = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "Gateway",
    "metadata": {"name": "pygw"},
    "spec": {
        "gatewayClassName": "azure-alb-external",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
    },
}
api.create_namespaced_custom_object("gateway.networking.k8s.io", "v1", "default", "gateways", gw)
got = api.get_namespaced_custom_object("gateway.networking.k8s.io", "v1", "default", "gateways", "pygw")
assert got["metadata"]["name"] == "pygw"
v1.delete_namespaced_config_map("py-cm", "default")
print("python client ok")

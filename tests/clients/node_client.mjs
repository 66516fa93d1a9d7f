// @kubernetes/client-node (1.x) against the sandbox's kubeconfig, unchanged: HTTPS with the
// sandbox's CA, the bearer token, CRUD, merge patch, watch and an error.
// Usage: node node_client.mjs KUBECONFIG (exits non-zero on any mismatch).
import * as k8s from '@kubernetes/client-node';
import assert from 'node:assert/strict';

const kc = new k8s.KubeConfig();
kc.loadFromFile(process.argv[2]);
const core = kc.makeApiClient(k8s.CoreV1Api);
const ns = await core.listNamespace();
assert.ok(ns.items.some((n) => n.metadata.name === 'default'));
await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'node-cm' }, data: { a: '1' } } });
await core.patchNamespacedConfigMap(
  { name: 'node-cm', namespace: 'default', body: { data: { b: '2' } } },
  k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
);
const got = await core.readNamespacedConfigMap({ name: 'node-cm', namespace: 'default' });
assert.deepEqual(got.data, { a: '1', b: '2' });
await assert.rejects(
  core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'node-cm' } } }),
  (e) => e.code === 409,
);
const seen = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no watch event within 5 s')), 5000);
  new k8s.Watch(kc)
    .watch('/api/v1/namespaces/default/configmaps', {}, (type, obj) => {
      clearTimeout(timer);
      resolve(`${type} ${obj.metadata.name}`);
    }, (err) => err && reject(err))
    .catch(reject);
});
assert.equal(seen, 'ADDED node-cm');
await core.deleteNamespacedConfigMap({ name: 'node-cm', namespace: 'default' });
console.log('node client ok');
process.exit(0);

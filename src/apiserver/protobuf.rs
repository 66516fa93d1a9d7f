//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into JSON.
//!
//! kubectl's typed-clientset commands (`create namespace|configmap|secret|deployment|service`,
//! ...) POST their objects as Kubernetes protobuf, and client-go has no JSON fallback when a
//! server cannot read that. The sandbox stores objects as JSON, so [`decode`] turns such a body
//! into the object a JSON client would have sent.
//!
//! Wire format (k8s.io/apimachinery `pkg/runtime/serializer/protobuf/protobuf.go`): the prefix
//! `k8s\x00` (the last byte is the encoding style, 0 = `runtime.Unknown`), then a
//! `runtime.Unknown` (`pkg/runtime/generated.proto`) whose `raw` field is the object message.
//! The object is decoded by a small generic decoder driven by static tables transcribed from the
//! upstream `generated.proto` files (each table cites its message). Field numbers absent from a
//! table are skipped: `status`, `managedFields`, security contexts, affinity, ...
//!
//! JSON fidelity: the gogo-generated marshallers write every non-pointer field, empty strings and
//! zeros included, while Go's JSON encoder drops them through `omitempty`. So zero scalars are
//! dropped unless the table marks the field `Card::Keep` (pointer fields such as
//! `spec.replicas`, and fields without `omitempty` such as `containerPort`). Embedded structs
//! (`json:",inline"`, e.g. `Volume.volumeSource`, `Probe.handler`) are flattened into their
//! parent, and a zero `metav1.Time` becomes `null`, as Go marshals it.

use serde_json::{Map, Value};
use tables::{
    CONFIG_MAP, DEPLOYMENT, INT_OR_STRING, NAMESPACE, POD, QUANTITY, SECRET, SERVICE,
    SERVICE_ACCOUNT, TIMESTAMP, UNKNOWN,
};

type Obj = Map<String, Value>;

const MAGIC: &[u8] = b"k8s\x00";
/// `time.Time{}.Unix()`: Go's zero time, 0001-01-01T00:00:00Z.
const ZERO_TIME_SECS: i64 = -62_135_596_800;

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The body does not start with the `k8s\x00` magic.
    #[error("request body is not Kubernetes protobuf: it lacks the \"k8s\\x00\" prefix")]
    NotProtobuf,
    /// The `runtime.Unknown` envelope names no apiVersion or kind.
    #[error("protobuf body has no apiVersion/kind in its runtime.Unknown envelope")]
    MissingTypeMeta,
    /// The object's `apiVersion/kind` has no decoding table here.
    #[error("protobuf body for {0}: kind not supported by the protobuf decoder, send JSON")]
    UnsupportedKind(String),
    /// The envelope declares a `contentEncoding` (client-go never sets one).
    #[error("protobuf body for {gvk}: unsupported contentEncoding {encoding:?}")]
    UnsupportedEncoding {
        /// `apiVersion/kind` of the object.
        gvk: String,
        /// The declared encoding.
        encoding: String,
    },
    /// Truncated or otherwise malformed wire data.
    #[error("protobuf body for {what}: {msg}")]
    Malformed {
        /// `apiVersion/kind`, or `runtime.Unknown envelope` when the envelope itself is bad.
        what: String,
        /// What failed, after the JSON path of the enclosing field if any.
        msg: String,
    },
}

/// Decodes an `application/vnd.kubernetes.protobuf` body (the "k8s\0" magic + runtime.Unknown
/// envelope) into a JSON object with apiVersion and kind set.
///
/// Decodable kinds: v1 Namespace, ConfigMap, Secret, Service, Pod, ServiceAccount and apps/v1
/// Deployment; others fail with [`ProtoError::UnsupportedKind`]. Never panics.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtoError::NotProtobuf)?;
    let bad = |e: Fail| ProtoError::Malformed {
        what: "runtime.Unknown envelope".into(),
        msg: e.to_string(),
    };
    let (mut env, mut raw, mut rd) = (Obj::new(), &[][..], Reader(envelope));
    while let Some((num, wire, val)) = rd.field().map_err(bad)? {
        match (num, val) {
            (2, Val::Bytes(b)) => raw = b,
            (2, _) => return Err(bad(wire_error(2, "raw", wire, 2))),
            (num, val) => {
                if let Some(fd) = UNKNOWN.iter().find(|fd| u64::from(fd.0) == num) {
                    field(fd, wire, val, &mut env).map_err(bad)?;
                }
            }
        }
    }
    let env = Value::Object(env);
    let text = |ptr: &str| env.pointer(ptr).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("/typeMeta/apiVersion"), text("/typeMeta/kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtoError::MissingTypeMeta);
    }
    let gvk = format!("{api_version}/{kind}");
    if !text("/contentEncoding").is_empty() {
        let encoding = text("/contentEncoding").to_owned();
        return Err(ProtoError::UnsupportedEncoding { gvk, encoding });
    }
    let fields = match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "Service") => SERVICE,
        ("v1", "Pod") => POD,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        _ => return Err(ProtoError::UnsupportedKind(gvk)),
    };
    let mut obj = Obj::new();
    obj.insert("kind".into(), kind.into());
    obj.insert("apiVersion".into(), api_version.into());
    message(raw, fields, &mut obj).map_err(|e| ProtoError::Malformed {
        what: gvk,
        msg: e.to_string(),
    })?;
    Ok(Value::Object(obj))
}

/// A failure inside the object: `path` is the dotted JSON path of the enclosing field.
struct Fail {
    path: String,
    msg: String,
}

impl Fail {
    fn within(mut self, name: &str) -> Self {
        if !name.is_empty() {
            let sep = if self.path.is_empty() { "" } else { "." };
            self.path = format!("{name}{sep}{}", self.path);
        }
        self
    }
}

impl From<String> for Fail {
    fn from(msg: String) -> Self {
        let path = String::new();
        Fail { path, msg }
    }
}

impl From<&str> for Fail {
    fn from(msg: &str) -> Self {
        msg.to_owned().into()
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path.as_str() {
            "" => f.write_str(&self.msg),
            path => write!(f, "{path}: {}", self.msg),
        }
    }
}

fn wire_error(num: u64, name: &str, wire: u8, want: u8) -> Fail {
    format!("field {num} ({name}) has wire type {wire}, expected {want}").into()
}

/// One field's payload; fixed-width values are skipped (no type decoded here uses them).
enum Val<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Reads protobuf wire format from the remaining bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, Fail> {
        let mut v = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.0 = &self.0[i + 1..];
                return Ok(v);
            }
        }
        if self.0.len() < 10 {
            return Err("truncated varint".into());
        }
        Err("varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], Fail> {
        let n = usize::try_from(n).ok().filter(|&n| n <= self.0.len());
        let n = n.ok_or("field runs past the end of its message")?;
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    /// The next (field number, wire type, payload), or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, u8, Val<'a>)>, Fail> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, (key & 7) as u8);
        if num == 0 {
            return Err("field number 0".into());
        }
        let val = match wire {
            0 => Val::Varint(self.varint()?),
            1 => self.take(8).map(|_| Val::Fixed)?,
            2 => {
                let n = self.varint()?;
                Val::Bytes(self.take(n)?)
            }
            5 => self.take(4).map(|_| Val::Fixed)?,
            _ => return Err(format!("field {num} has unsupported wire type {wire}").into()),
        };
        Ok(Some((num, wire, val)))
    }
}

/// How a table field maps to JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// int32/int64 varint -> JSON number.
    Int,
    Bool,
    /// -> base64 string, as Go's JSON encodes `[]byte`.
    Bytes,
    /// `intstr.IntOrString` {type=1, intVal=2, strVal=3} -> number or string.
    IntOrStr,
    /// `resource.Quantity` {string=1} -> string.
    Qty,
    /// `metav1.Time` {seconds=1, nanos=2} -> RFC 3339 string, null when zero.
    Time,
    Msg(&'static [F]),
    /// An embedded struct (`json:",inline"`): its fields land in the parent object.
    Inline(&'static [F]),
    /// `map<string, V>`: repeated entry messages {key=1, value=2}.
    Map(&'static Ty),
}

#[derive(Clone, Copy)]
enum Card {
    /// Go `omitempty` value field: "", 0 and false are dropped.
    Optional,
    /// Pointer or non-`omitempty` field: zero values are kept.
    Keep,
    Repeated,
}

/// A message field: number, JSON name, type, cardinality.
struct F(u32, &'static str, Ty, Card);

const fn f(num: u32, name: &'static str, ty: Ty) -> F {
    F(num, name, ty, Card::Optional)
}

const fn k(num: u32, name: &'static str, ty: Ty) -> F {
    F(num, name, ty, Card::Keep)
}

const fn r(num: u32, name: &'static str, ty: Ty) -> F {
    F(num, name, ty, Card::Repeated)
}

const fn inline(num: u32, fields: &'static [F]) -> F {
    f(num, "", Ty::Inline(fields))
}

/// Decodes the fields of one message into `out`, skipping unknown field numbers.
fn message(buf: &[u8], fields: &[F], out: &mut Obj) -> Result<(), Fail> {
    let mut rd = Reader(buf);
    while let Some((num, wire, val)) = rd.field()? {
        if let Some(fd) = fields.iter().find(|fd| u64::from(fd.0) == num) {
            field(fd, wire, val, out)?;
        }
    }
    Ok(())
}

fn sub(buf: &[u8], fields: &[F], name: &str) -> Result<Obj, Fail> {
    let mut m = Obj::new();
    message(buf, fields, &mut m).map_err(|e| e.within(name))?;
    Ok(m)
}

fn field(&F(num, name, ty, card): &F, wire: u8, val: Val, out: &mut Obj) -> Result<(), Fail> {
    let v = match (ty, val) {
        (Ty::Inline(fields), Val::Bytes(b)) => return message(b, fields, out),
        (Ty::Map(vty), Val::Bytes(b)) => {
            let (key, v) = map_entry(b, *vty).map_err(|e| e.within(name))?;
            let map = out.entry(name).or_insert_with(|| Value::Object(Obj::new()));
            if let Value::Object(m) = map {
                m.insert(key, v);
            }
            return Ok(());
        }
        (ty, val) => value(ty, val, wire, u64::from(num), name)?,
    };
    match card {
        Card::Repeated => {
            if let Value::Array(a) = out.entry(name).or_insert_with(|| Value::Array(Vec::new())) {
                a.push(v);
            }
        }
        Card::Optional if v == "" || v == 0 || v == false => {}
        _ => {
            out.insert(name.to_owned(), v);
        }
    }
    Ok(())
}

fn value(ty: Ty, val: Val, wire: u8, num: u64, name: &str) -> Result<Value, Fail> {
    Ok(match (ty, val) {
        (Ty::Int, Val::Varint(v)) => Value::from(v as i64),
        (Ty::Bool, Val::Varint(v)) => Value::Bool(v != 0),
        (Ty::Str, Val::Bytes(b)) => Value::String(String::from_utf8_lossy(b).into_owned()),
        (Ty::Bytes, Val::Bytes(b)) => Value::String(base64(b)),
        (Ty::Msg(fields), Val::Bytes(b)) => Value::Object(sub(b, fields, name)?),
        (Ty::Qty, Val::Bytes(b)) => {
            let quantity = sub(b, QUANTITY, name)?.remove("string");
            quantity.unwrap_or_else(|| "0".into())
        }
        (Ty::IntOrStr, Val::Bytes(b)) => {
            let mut m = sub(b, INT_OR_STRING, name)?;
            if m.get("type").and_then(Value::as_i64) == Some(1) {
                m.remove("strVal").unwrap_or_else(|| "".into())
            } else {
                m.remove("intVal").unwrap_or_else(|| 0.into())
            }
        }
        (Ty::Time, Val::Bytes(b)) => {
            let m = sub(b, TIMESTAMP, name)?;
            timestamp(&m).map_err(|e| Fail::from(e).within(name))?
        }
        _ => {
            let varint = matches!(ty, Ty::Int | Ty::Bool);
            return Err(wire_error(num, name, wire, if varint { 0 } else { 2 }));
        }
    })
}

fn map_entry(buf: &[u8], vty: Ty) -> Result<(String, Value), Fail> {
    let mut key = String::new();
    let mut v = Value::from(if matches!(vty, Ty::Qty) { "0" } else { "" });
    let mut rd = Reader(buf);
    while let Some((num, wire, val)) = rd.field()? {
        match num {
            1 => {
                if let Value::String(s) = value(Ty::Str, val, wire, 1, "key")? {
                    key = s;
                }
            }
            2 => v = value(vty, val, wire, 2, "value")?,
            _ => {}
        }
    }
    Ok((key, v))
}

/// `metav1.Time` marshals as RFC 3339 in UTC with whole seconds; `nanos` is normalized as Go's
/// `time.Unix` does and then dropped.
fn timestamp(m: &Obj) -> Result<Value, String> {
    let get = |k: &str| m.get(k).and_then(Value::as_i64).unwrap_or(0);
    let nanos = get("nanos");
    let secs = get("seconds").saturating_add(nanos.div_euclid(1_000_000_000));
    if m.is_empty() || (secs == ZERO_TIME_SECS && nanos.rem_euclid(1_000_000_000) == 0) {
        return Ok(Value::Null);
    }
    let (day, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 -> civil date (H. Hinnant's `civil_from_days`).
    let z = day + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    if !(0..=9999).contains(&y) {
        return Err(format!("timestamp year {y} outside [0,9999]"));
    }
    let (h, min, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    Ok(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{min:02}:{s:02}Z").into())
}

/// Standard base64 with padding, as Go's `encoding/json` writes `[]byte`.
fn base64(b: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let bits = chunk
            .iter()
            .enumerate()
            .map(|(i, &x)| u32::from(x) << (16 - 8 * i));
        let n = bits.fold(0, |n, b| n | b);
        for i in 0..4 {
            let c = char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]);
            s.push(if i <= chunk.len() { c } else { '=' });
        }
    }
    s
}

/// The decoding tables. Field numbers are from the upstream generated.proto files named above
/// each group; `f` = omitempty value, `k` = pointer or non-omitempty (zero kept), `r` = repeated.
#[rustfmt::skip]
mod tables {
    use super::{f, inline, k, r, F, Ty};
    use super::Ty::{Bool, Int, IntOrStr, Msg, Qty, Str, Time};

    // k8s.io/apimachinery pkg/runtime/generated.proto: Unknown (raw=2 is read directly) and
    // runtime.TypeMeta; pkg/util/intstr IntOrString; pkg/api/resource Quantity; pkg/apis/meta/v1
    // Time {seconds, nanos}.
    pub(super) const UNKNOWN: &[F] =
        &[k(1, "typeMeta", Msg(TYPE_META)), k(3, "contentEncoding", Str)];
    const TYPE_META: &[F] = &[k(1, "apiVersion", Str), k(2, "kind", Str)];
    pub(super) const INT_OR_STRING: &[F] =
        &[k(1, "type", Int), k(2, "intVal", Int), k(3, "strVal", Str)];
    pub(super) const QUANTITY: &[F] = &[k(1, "string", Str)];
    pub(super) const TIMESTAMP: &[F] = &[k(1, "seconds", Int), k(2, "nanos", Int)];
    const MAP_STR: Ty = Ty::Map(&Str);
    const MAP_BYTES: Ty = Ty::Map(&Ty::Bytes);
    const MAP_QTY: Ty = Ty::Map(&Qty);

    // k8s.io/apimachinery pkg/apis/meta/v1/generated.proto: ObjectMeta (managedFields=17 skipped),
    // OwnerReference, LabelSelector, LabelSelectorRequirement.
    const OBJECT_META: &[F] = &[
        f(1, "name", Str), f(2, "generateName", Str), f(3, "namespace", Str), f(4, "selfLink", Str),
        f(5, "uid", Str), f(6, "resourceVersion", Str), f(7, "generation", Int),
        f(8, "creationTimestamp", Time), f(9, "deletionTimestamp", Time),
        k(10, "deletionGracePeriodSeconds", Int), f(11, "labels", MAP_STR),
        f(12, "annotations", MAP_STR), r(13, "ownerReferences", Msg(OWNER_REFERENCE)),
        r(14, "finalizers", Str),
    ];
    const OWNER_REFERENCE: &[F] = &[
        k(5, "apiVersion", Str), k(1, "kind", Str), k(3, "name", Str), k(4, "uid", Str),
        k(6, "controller", Bool), k(7, "blockOwnerDeletion", Bool),
    ];
    const LABEL_SELECTOR: &[F] =
        &[f(1, "matchLabels", MAP_STR), r(2, "matchExpressions", Msg(REQ))];
    const REQ: &[F] = &[k(1, "key", Str), k(2, "operator", Str), r(3, "values", Str)];
    const METADATA: F = f(1, "metadata", Msg(OBJECT_META));

    // k8s.io/api core/v1/generated.proto. `status` (field 3 of the top-level kinds) is skipped.
    pub(super) const NAMESPACE: &[F] = &[METADATA, f(2, "spec", Msg(&[r(1, "finalizers", Str)]))];
    pub(super) const CONFIG_MAP: &[F] = &[
        METADATA, k(4, "immutable", Bool), f(2, "data", MAP_STR), f(3, "binaryData", MAP_BYTES),
    ];
    pub(super) const SECRET: &[F] = &[
        METADATA, k(5, "immutable", Bool), f(2, "data", MAP_BYTES), f(4, "stringData", MAP_STR),
        f(3, "type", Str),
    ];
    pub(super) const SERVICE: &[F] = &[METADATA, f(2, "spec", Msg(SERVICE_SPEC))];
    const SERVICE_SPEC: &[F] = &[
        r(1, "ports", Msg(SERVICE_PORT)), f(2, "selector", MAP_STR), f(3, "clusterIP", Str),
        r(18, "clusterIPs", Str), f(4, "type", Str), r(5, "externalIPs", Str),
        f(7, "sessionAffinity", Str), f(8, "loadBalancerIP", Str),
        r(9, "loadBalancerSourceRanges", Str), f(10, "externalName", Str),
        f(11, "externalTrafficPolicy", Str), f(12, "healthCheckNodePort", Int),
        f(13, "publishNotReadyAddresses", Bool), r(19, "ipFamilies", Str),
        k(17, "ipFamilyPolicy", Str), k(20, "allocateLoadBalancerNodePorts", Bool),
        k(21, "loadBalancerClass", Str), k(22, "internalTrafficPolicy", Str),
    ];
    const SERVICE_PORT: &[F] = &[
        f(1, "name", Str), f(2, "protocol", Str), k(6, "appProtocol", Str), k(3, "port", Int),
        f(4, "targetPort", IntOrStr), f(5, "nodePort", Int),
    ];
    /// Pod, and PodTemplateSpec, which has the same {metadata=1, spec=2}.
    pub(super) const POD: &[F] = &[METADATA, f(2, "spec", Msg(POD_SPEC))];
    const POD_SPEC: &[F] = &[
        r(1, "volumes", Msg(VOLUME)), r(20, "initContainers", Msg(CONTAINER)),
        r(2, "containers", Msg(CONTAINER)), f(3, "restartPolicy", Str),
        k(4, "terminationGracePeriodSeconds", Int), k(5, "activeDeadlineSeconds", Int),
        f(6, "dnsPolicy", Str), f(7, "nodeSelector", MAP_STR), f(8, "serviceAccountName", Str),
        f(9, "serviceAccount", Str), k(21, "automountServiceAccountToken", Bool),
        f(10, "nodeName", Str), f(11, "hostNetwork", Bool), f(12, "hostPID", Bool),
        f(13, "hostIPC", Bool), k(27, "shareProcessNamespace", Bool),
        r(15, "imagePullSecrets", Msg(LOCAL_OBJECT_REF)), f(16, "hostname", Str),
        f(17, "subdomain", Str), f(19, "schedulerName", Str), r(22, "tolerations", Msg(TOLERATION)),
        f(24, "priorityClassName", Str), k(25, "priority", Int), k(29, "runtimeClassName", Str),
        k(30, "enableServiceLinks", Bool), k(31, "preemptionPolicy", Str),
    ];
    const TOLERATION: &[F] = &[
        f(1, "key", Str), f(2, "operator", Str), f(3, "value", Str), f(4, "effect", Str),
        k(5, "tolerationSeconds", Int),
    ];
    const CONTAINER: &[F] = &[
        k(1, "name", Str), f(2, "image", Str), r(3, "command", Str), r(4, "args", Str),
        f(5, "workingDir", Str), r(6, "ports", Msg(CONTAINER_PORT)),
        r(19, "envFrom", Msg(ENV_FROM_SOURCE)), r(7, "env", Msg(ENV_VAR)),
        f(8, "resources", Msg(&[f(1, "limits", MAP_QTY), f(2, "requests", MAP_QTY)])),
        r(9, "volumeMounts", Msg(VOLUME_MOUNT)), f(10, "livenessProbe", Msg(PROBE)),
        f(11, "readinessProbe", Msg(PROBE)), f(22, "startupProbe", Msg(PROBE)),
        f(12, "lifecycle", Msg(&[f(1, "postStart", Msg(HANDLER)), f(2, "preStop", Msg(HANDLER))])),
        f(13, "terminationMessagePath", Str), f(20, "terminationMessagePolicy", Str),
        f(14, "imagePullPolicy", Str), f(16, "stdin", Bool), f(17, "stdinOnce", Bool),
        f(18, "tty", Bool),
    ];
    const CONTAINER_PORT: &[F] = &[
        f(1, "name", Str), f(2, "hostPort", Int), k(3, "containerPort", Int), f(4, "protocol", Str),
        f(5, "hostIP", Str),
    ];
    const ENV_VAR: &[F] =
        &[k(1, "name", Str), f(2, "value", Str), f(3, "valueFrom", Msg(ENV_SOURCE))];
    const ENV_SOURCE: &[F] = &[
        f(1, "fieldRef", Msg(&[f(1, "apiVersion", Str), k(2, "fieldPath", Str)])),
        f(2, "resourceFieldRef",
            Msg(&[f(1, "containerName", Str), k(2, "resource", Str), f(3, "divisor", Qty)])),
        f(3, "configMapKeyRef", Msg(KEY_SELECTOR)), f(4, "secretKeyRef", Msg(KEY_SELECTOR)),
    ];
    /// ConfigMapKeySelector, SecretKeySelector: {localObjectReference=1 (inline), key, optional}.
    const KEY_SELECTOR: &[F] =
        &[inline(1, LOCAL_OBJECT_REF), k(2, "key", Str), k(3, "optional", Bool)];
    const LOCAL_OBJECT_REF: &[F] = &[f(1, "name", Str)];
    const ENV_FROM_SOURCE: &[F] = &[
        f(1, "prefix", Str), f(2, "configMapRef", Msg(ENV_REF)), f(3, "secretRef", Msg(ENV_REF)),
    ];
    /// ConfigMapEnvSource and SecretEnvSource: {localObjectReference=1 (inline), optional=2}.
    const ENV_REF: &[F] = &[inline(1, LOCAL_OBJECT_REF), k(2, "optional", Bool)];
    const VOLUME_MOUNT: &[F] = &[
        k(1, "name", Str), f(2, "readOnly", Bool), k(3, "mountPath", Str), f(4, "subPath", Str),
        k(5, "mountPropagation", Str), f(6, "subPathExpr", Str),
    ];
    /// Probe embeds its handler as field 1 (`ProbeHandler`, `Handler` before 1.23).
    const PROBE: &[F] = &[
        inline(1, HANDLER), f(2, "initialDelaySeconds", Int), f(3, "timeoutSeconds", Int),
        f(4, "periodSeconds", Int), f(5, "successThreshold", Int), f(6, "failureThreshold", Int),
        k(7, "terminationGracePeriodSeconds", Int),
    ];
    const HANDLER: &[F] = &[
        f(1, "exec", Msg(&[r(1, "command", Str)])), f(2, "httpGet", Msg(HTTP_GET)),
        f(3, "tcpSocket", Msg(&[f(1, "port", IntOrStr), f(2, "host", Str)])),
    ];
    const HTTP_GET: &[F] = &[
        f(1, "path", Str), f(2, "port", IntOrStr), f(3, "host", Str), f(4, "scheme", Str),
        r(5, "httpHeaders", Msg(&[k(1, "name", Str), k(2, "value", Str)])),
    ];
    /// Volume embeds its VolumeSource as field 2; only the common sources are decoded.
    const VOLUME: &[F] = &[k(1, "name", Str), inline(2, VOLUME_SOURCE)];
    const VOLUME_SOURCE: &[F] = &[
        f(1, "hostPath", Msg(&[k(1, "path", Str), k(2, "type", Str)])),
        f(2, "emptyDir", Msg(&[f(1, "medium", Str), k(2, "sizeLimit", Qty)])),
        f(6, "secret", Msg(&[
            f(1, "secretName", Str), r(2, "items", Msg(KEY_TO_PATH)), k(3, "defaultMode", Int),
            k(4, "optional", Bool),
        ])),
        f(10, "persistentVolumeClaim", Msg(&[k(1, "claimName", Str), f(2, "readOnly", Bool)])),
        f(19, "configMap", Msg(&[
            inline(1, LOCAL_OBJECT_REF), r(2, "items", Msg(KEY_TO_PATH)), k(3, "defaultMode", Int),
            k(4, "optional", Bool),
        ])),
    ];
    const KEY_TO_PATH: &[F] = &[k(1, "key", Str), k(2, "path", Str), k(3, "mode", Int)];
    pub(super) const SERVICE_ACCOUNT: &[F] = &[
        METADATA, r(2, "secrets", Msg(OBJECT_REFERENCE)),
        r(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REF)), k(4, "automountServiceAccountToken", Bool),
    ];
    const OBJECT_REFERENCE: &[F] = &[
        f(1, "kind", Str), f(2, "namespace", Str), f(3, "name", Str), f(4, "uid", Str),
        f(5, "apiVersion", Str), f(6, "resourceVersion", Str), f(7, "fieldPath", Str),
    ];

    // k8s.io/api apps/v1/generated.proto: Deployment, DeploymentSpec, DeploymentStrategy,
    // RollingUpdateDeployment.
    pub(super) const DEPLOYMENT: &[F] = &[METADATA, f(2, "spec", Msg(DEPLOYMENT_SPEC))];
    const DEPLOYMENT_SPEC: &[F] = &[
        k(1, "replicas", Int), f(2, "selector", Msg(LABEL_SELECTOR)), f(3, "template", Msg(POD)),
        f(4, "strategy", Msg(&[f(1, "type", Str), f(2, "rollingUpdate", Msg(ROLLING_UPDATE))])),
        f(5, "minReadySeconds", Int), k(6, "revisionHistoryLimit", Int), f(7, "paused", Bool),
        k(9, "progressDeadlineSeconds", Int),
    ];
    const ROLLING_UPDATE: &[F] = &[f(1, "maxUnavailable", IntOrStr), f(2, "maxSurge", IntOrStr)];
}

/// A protobuf writer (proto3 wire format), for the responses encoded here: the OpenAPI v2
/// `Document` (`super::swagger`). Tests also build request bodies with it.
#[derive(Default)]
pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, n: u32, wire: u8) {
        self.varint(u64::from(n) << 3 | u64::from(wire));
    }

    /// A varint field (`int64`, `bool`, enums); negative numbers take ten bytes, as in Go.
    pub(super) fn int(&mut self, n: u32, v: i64) {
        self.key(n, 0);
        self.varint(v as u64);
    }

    /// A `bool` field, left out when false (proto3 writes no default values).
    pub(super) fn bool(&mut self, n: u32, v: bool) {
        if v {
            self.int(n, 1);
        }
    }

    /// A `double` field (fixed 64-bit, little-endian).
    pub(super) fn double(&mut self, n: u32, v: f64) {
        self.key(n, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    /// A length-delimited field: `bytes`, or an already encoded message.
    pub(super) fn bytes(&mut self, n: u32, v: &[u8]) {
        self.key(n, 2);
        self.varint(v.len() as u64);
        self.0.extend_from_slice(v);
    }

    /// A `string` field, left out when empty.
    pub(super) fn string(&mut self, n: u32, v: &str) {
        if !v.is_empty() {
            self.bytes(n, v.as_bytes());
        }
    }

    /// An embedded message, written by `f` (present even when empty, as Go writes a set
    /// pointer).
    pub(super) fn message(&mut self, n: u32, f: impl FnOnce(&mut Writer)) {
        let mut sub = Writer::default();
        f(&mut sub);
        self.bytes(n, &sub.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A tiny protobuf builder over [`Writer`]. The bodies below mirror client-go's gogo
    /// marshallers, which write every non-pointer field, empty or not.
    #[derive(Default)]
    struct E(Writer);

    fn e() -> E {
        E::default()
    }

    impl E {
        /// Key (field `n`, wire type) followed by an already encoded payload.
        fn raw(mut self, n: u32, wire: u8, payload: &[u8]) -> Self {
            self.0.key(n, wire);
            self.0 .0.extend_from_slice(payload);
            self
        }
        fn i(mut self, n: u32, v: i64) -> Self {
            self.0.int(n, v);
            self
        }
        fn b(mut self, n: u32, v: &[u8]) -> Self {
            self.0.bytes(n, v);
            self
        }
        fn s(self, n: u32, v: &str) -> Self {
            self.b(n, v.as_bytes())
        }
        fn m(self, n: u32, v: E) -> Self {
            self.b(n, &v.0 .0)
        }
        /// A map entry {key=1, value=2}.
        fn kv(self, n: u32, key: &str, v: &str) -> Self {
            self.m(n, e().s(1, key).s(2, v))
        }
        fn bytes(&self) -> &[u8] {
            &self.0 .0
        }
    }

    /// runtime.Unknown behind the magic, as protobuf.go's doEncode writes it.
    fn envelope(api_version: &str, kind: &str, obj: E) -> Vec<u8> {
        let type_meta = e().s(1, api_version).s(2, kind);
        let unknown = e().m(1, type_meta).m(2, obj).s(3, "").s(4, "");
        [MAGIC, unknown.bytes()].concat()
    }

    fn meta(name: &str, ns: &str) -> E {
        let m = e().s(1, name).s(2, "").s(3, ns).s(4, "");
        m.s(5, "").s(6, "").i(7, 0).m(8, e())
    }

    fn int_or_str(int: Option<i64>, s: &str) -> E {
        let ty = i64::from(int.is_none());
        e().i(1, ty).i(2, int.unwrap_or(0)).s(3, s)
    }

    fn deployment_body() -> Vec<u8> {
        // kubectl create deployment web --image=nginx:1.25 --replicas=3 --port=80, plus an env.
        let field_ref = e().s(1, "v1").s(2, "metadata.name");
        let env = e().s(1, "POD_NAME").s(2, "").m(3, e().m(1, field_ref));
        let port = e().s(1, "").i(2, 0).i(3, 80).s(4, "TCP").s(5, "");
        let c = e().s(1, "web").s(2, "nginx:1.25").s(5, "");
        let c = c.m(6, port).m(7, env).m(8, e()).s(13, "");
        let c = c.s(14, "").i(16, 0).i(17, 0).i(18, 0);
        let pod_spec = e().m(2, c).s(3, "").s(6, "").i(11, 0);
        let labels = meta("", "").kv(11, "app", "web");
        let template = e().m(1, labels).m(2, pod_spec);
        let max_unavailable = int_or_str(None, "25%");
        let rolling = e().m(1, max_unavailable).m(2, int_or_str(Some(1), ""));
        let strategy = e().s(1, "RollingUpdate").m(2, rolling);
        let selector = e().kv(1, "app", "web");
        let spec = e().i(1, 3).m(2, selector).m(3, template);
        let spec = spec.m(4, strategy).i(5, 0).i(7, 0);
        let md = meta("web", "default").kv(11, "app", "web");
        envelope("apps/v1", "Deployment", e().m(1, md).m(2, spec).m(3, e()))
    }

    #[test]
    fn namespace_and_configmap() {
        // kubectl create namespace test-infra
        let ns = e()
            .m(1, meta("test-infra", ""))
            .m(2, e())
            .m(3, e().s(1, ""));
        let got = decode(&envelope("v1", "Namespace", ns)).unwrap();
        let want = json!({"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": "test-infra", "creationTimestamp": null}, "spec": {}});
        assert_eq!(got, want);
        let keys = ["kind", "apiVersion", "metadata", "spec"];
        assert!(got.as_object().unwrap().keys().eq(keys));

        // kubectl create configmap cfg --from-literal=a=1 --from-literal=b=two, plus binaryData
        let cm = e().m(1, meta("cfg", "default")).kv(2, "a", "1");
        let cm = cm.kv(2, "b", "two").kv(3, "bin", "\u{0}\u{7f}");
        let got = decode(&envelope("v1", "ConfigMap", cm)).unwrap();
        assert_eq!(got["data"], json!({"a": "1", "b": "two"}));
        assert_eq!(got["binaryData"], json!({"bin": "AH8="}));
        assert_eq!(got["metadata"]["namespace"], "default");
    }

    #[test]
    fn tls_secret_bytes_are_base64() {
        let s = e().m(1, meta("tls", "")).kv(2, "tls.crt", "hello");
        let s = s.kv(2, "tls.key", "hi\n").s(3, "kubernetes.io/tls").i(5, 0);
        let got = decode(&envelope("v1", "Secret", s)).unwrap();
        assert_eq!(
            got["data"],
            json!({"tls.crt": "aGVsbG8=", "tls.key": "aGkK"})
        );
        assert_eq!(got["type"], "kubernetes.io/tls");
        assert_eq!(got["immutable"], false, "*bool keeps an explicit false");
        // A generic secret carries type "": dropped like JSON's omitempty, so it gets defaulted.
        let generic = e().m(1, meta("g", "")).s(3, "");
        let got = decode(&envelope("v1", "Secret", generic)).unwrap();
        assert!(got.get("type").is_none());
        for (plain, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v")] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn service_target_ports() {
        // kubectl create service clusterip web --tcp=80:http --tcp=443:8443
        let port = |name, port, target| {
            let p = e().s(1, name).s(2, "TCP").i(3, port);
            p.m(4, target).i(5, 0)
        };
        let spec = e().m(1, port("80-http", 80, int_or_str(None, "http")));
        let spec = spec.m(1, port("443-8443", 443, int_or_str(Some(8443), "")));
        let spec = spec.kv(2, "app", "web").s(3, "").s(4, "ClusterIP");
        let spec = spec.s(7, "").s(10, "").s(11, "").i(12, 0);
        let svc = e().m(1, meta("web", "")).m(2, spec).m(3, e());
        let got = decode(&envelope("v1", "Service", svc)).unwrap();
        let ports = json!([
            {"name": "80-http", "protocol": "TCP", "port": 80, "targetPort": "http"},
            {"name": "443-8443", "protocol": "TCP", "port": 443, "targetPort": 8443}]);
        let want = json!({"ports": ports, "selector": {"app": "web"}, "type": "ClusterIP"});
        assert_eq!(got["spec"], want);
        assert!(got.get("status").is_none());
    }

    #[test]
    fn deployment() {
        let field_ref = json!({"apiVersion": "v1", "fieldPath": "metadata.name"});
        let container = json!({"name": "web", "image": "nginx:1.25",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": field_ref}}],
            "resources": {}});
        let labels = json!({"app": "web"});
        let want = json!({"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null,
                "labels": labels},
            "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                "template": {"metadata": {"creationTimestamp": null, "labels": labels},
                    "spec": {"containers": [container]}},
                "strategy": {"type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}}}});
        assert_eq!(decode(&deployment_body()).unwrap(), want);
    }

    #[test]
    fn pod_inline_fields_and_times() {
        // Probe{handler (inline) = {httpGet}}, Probe{handler = {exec}, periodSeconds}
        let http = e().s(1, "/healthz").m(2, int_or_str(Some(8080), ""));
        let liveness = e().m(1, e().m(2, http));
        let exec = e().s(1, "true");
        let readiness = e().m(1, e().m(1, exec)).i(4, 5);
        let c = e().s(1, "app").s(3, "sleep").s(3, "");
        let c = c.m(10, liveness).m(11, readiness);
        // Volume{name, volumeSource (inline) = {configMap{localObjectReference (inline)}}}
        let cm_source = e().m(1, e().s(1, "cfg")).i(3, 420);
        let cm = e().s(1, "cfg").m(2, e().m(19, cm_source));
        let tmp = e().s(1, "tmp").m(2, e().m(2, e().s(1, "")));
        let spec = e().m(1, cm).m(1, tmp).m(2, c);
        let spec = spec.s(3, "Always").i(4, 0);
        let created = e().i(1, 1_704_164_645);
        let md = e().m(8, created).m(9, e().i(1, 951_782_400).i(2, 7));
        let pod = e().m(1, md).m(2, spec);
        let got = decode(&envelope("v1", "Pod", pod)).unwrap();
        let md = &got["metadata"];
        assert_eq!(md["creationTimestamp"], "2024-01-02T03:04:05Z");
        assert_eq!(md["deletionTimestamp"], "2000-02-29T00:00:00Z");
        let volumes = json!([{"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}},
            {"name": "tmp", "emptyDir": {}}]);
        assert_eq!(got["spec"]["volumes"], volumes);
        let c = &got["spec"]["containers"][0];
        assert_eq!(c["command"], json!(["sleep", ""]));
        let http = json!({"path": "/healthz", "port": 8080});
        assert_eq!(c["livenessProbe"], json!({"httpGet": http}));
        let exec = json!({"exec": {"command": ["true"]}, "periodSeconds": 5});
        assert_eq!(c["readinessProbe"], exec);
        let grace = &got["spec"]["terminationGracePeriodSeconds"];
        assert_eq!(grace, 0, "a pointer field keeps its zero");

        let ts = |secs, nanos| {
            let m = sub(e().i(1, secs).i(2, nanos).bytes(), TIMESTAMP, "").ok()?;
            timestamp(&m).ok()
        };
        assert_eq!(ts(-1, 0), Some("1969-12-31T23:59:59Z".into()));
        assert_eq!(ts(ZERO_TIME_SECS, 0), Some(Value::Null));
        assert_eq!(ts(0, -1), Some("1969-12-31T23:59:59Z".into()));
        assert_eq!(ts(i64::MAX, 0), None, "year 292277026596 does not marshal");
    }

    #[test]
    fn unknown_fields_are_skipped() {
        // Unknown varint, fixed64, length-delimited and fixed32 fields, top-level and nested.
        let junk = |m: E| {
            let m = m.i(99, 7).raw(98, 1, &[0; 8]);
            m.s(97, "zz").raw(96, 5, &[0; 4])
        };
        let secret = junk(e().m(1, junk(meta("x", ""))).s(3, "Opaque"));
        let want = json!({"kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "x", "creationTimestamp": null}, "type": "Opaque"});
        assert_eq!(decode(&envelope("v1", "Secret", secret)).unwrap(), want);
    }

    #[test]
    fn errors_name_what_failed() {
        let err = |b: &[u8]| decode(b).unwrap_err().to_string();
        let json_body = br#"{"kind":"Namespace"}"#;
        assert!(err(json_body).contains(r#"lacks the "k8s\x00" prefix"#));
        assert!(err(MAGIC).contains("no apiVersion/kind"));
        let secret = envelope("v1", "Secret", e().i(2, 1));
        let want = "protobuf body for v1/Secret: field 2 (data) has wire type 0, expected 2";
        assert_eq!(err(&secret), want);
        let containers = e().m(2, e().i(7, 1));
        let spec = e().m(3, e().m(2, containers));
        let deploy = envelope("apps/v1", "Deployment", e().m(2, spec));
        let want = "protobuf body for apps/v1/Deployment: spec.template.spec.containers: \
                    field 7 (env) has wire type 0, expected 2";
        assert_eq!(err(&deploy), want);
        let job = envelope("batch/v1", "Job", e());
        assert!(err(&job).contains("batch/v1/Job: kind not supported"));
        let gzip = e().m(1, e().s(1, "v1").s(2, "Pod")).s(3, "gzip");
        assert!(err(&[MAGIC, gzip.bytes()].concat()).contains("contentEncoding \"gzip\""));
        let overlong = [&[0x28][..], &[0xff; 10]].concat();
        for (bytes, msg) in [
            (&[0x0b][..], "field 1 has unsupported wire type 3"),
            (&[0x28, 0xff], "truncated varint"),
            (&overlong, "varint longer than 10 bytes"),
            (&[0x00], "field number 0"),
            (
                &[0x12, 0x05, 0x00],
                "field runs past the end of its message",
            ),
        ] {
            assert!(err(&[MAGIC, bytes].concat()).ends_with(msg), "{msg}");
        }
    }

    #[test]
    fn truncated_and_corrupted_bodies_never_panic() {
        let body = deployment_body();
        for len in 0..body.len() {
            let _ = decode(&body[..len]);
        }
        assert!(decode(&body[..body.len() - 1]).is_err());
        let half = decode(&body[..body.len() / 2]).unwrap_err();
        assert!(half.to_string().contains("past the end"));
        for i in 0..body.len() {
            for flip in [0xff, 0x80, 0x07, 0x01] {
                let mut b = body.clone();
                b[i] ^= flip;
                let _ = decode(&b);
            }
        }
    }
}

//! Object steps: apply, delete, patch, annotate, wait/assert, tls-secret.

use super::model::{
    AnnotateSpec, ApplySpec, CheckSpec, DeleteSpec, ObjSpec, PatchSpec, TlsSecretSpec,
};
use super::parse::duration;
use super::shared::{
    Ctx, StepResult, DEFAULT_ASSERT_TIMEOUT, DEFAULT_TIMEOUT, FAULT_ANNOTATION, FIELD_MANAGER, POLL,
};
use super::{path, tls};
use crate::client::{resolve_kind, ObjRef};
use crate::manifest::{self, kind_rank};
use crate::meta;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

pub(crate) fn one_ref(ctx: &Ctx<'_>, o: &ObjSpec) -> Result<ObjRef, String> {
    let (kind, name) = match &o.reference {
        Some(r) => {
            let (k, n) = r.split_once('/').ok_or("`ref` should read kind/name")?;
            (k.to_string(), n.to_string())
        }
        None => (
            o.kind.clone().unwrap_or_else(|| "pod".into()),
            o.name
                .clone()
                .ok_or("this step needs one object: give `ref` or `name`")?,
        ),
    };
    let res = resolve_kind(&kind).ok_or_else(|| format!("unknown kind {kind:?}"))?;
    Ok(ObjRef {
        res,
        namespace: if res.namespaced {
            o.namespace.clone().unwrap_or_else(|| ctx.namespace.clone())
        } else {
            String::new()
        },
        name,
    })
}

/// The objects a spec names: one by name, or all matching a selector (sorted by name, skipping
/// terminating ones).
pub(crate) async fn refs(
    ctx: &Ctx<'_>,
    o: &ObjSpec,
) -> Result<Vec<(ObjRef, Option<Value>)>, String> {
    match (&o.selector, &o.reference, &o.name) {
        (Some(sel), None, None) => {
            let res = resolve_kind(o.kind.as_deref().unwrap_or("pod")).ok_or("unknown kind")?;
            let ns = o.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
            let mut items = ctx
                .client
                .list(res, Some(&ns), Some(sel))
                .await
                .map_err(|e| e.to_string())?;
            items.retain(|i| i.pointer("/metadata/deletionTimestamp").is_none());
            items.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
            Ok(items
                .into_iter()
                .map(|i| {
                    (
                        ObjRef {
                            res,
                            namespace: meta::namespace(&i).to_string(),
                            name: meta::name(&i).to_string(),
                        },
                        Some(i),
                    )
                })
                .collect())
        }
        _ => Ok(vec![(one_ref(ctx, o)?, None)]),
    }
}

/// Reads manifests: files, or every manifest below a folder.
pub(crate) fn read_manifests(
    dir: &Path,
    names: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for n in names {
        let p = dir.join(n);
        if p.is_dir() {
            let found = manifest::scan_dir(&p);
            if found.is_empty() {
                return Err(format!("{n}: no .yaml, .yml or .json files in this folder"));
            }
            for rel in found {
                let f = p.join(&rel);
                let text =
                    std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                out.push((format!("{n}/{}", rel.display()), text));
            }
        } else {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("failed to read {} ({}): {e}", n, p.display()))?;
            out.push((n.clone(), text));
        }
    }
    Ok(out)
}

/// Parses manifest texts into objects (prerequisites first).
pub(crate) fn objects_of(
    texts: &[(String, String)],
    default_ns: &str,
) -> Result<Vec<(String, ObjRef, Value)>, String> {
    let mut objs = Vec::new();
    for (name, text) in texts {
        let docs = manifest::parse(text).map_err(|e| match e.location {
            Some((l, c)) => format!("{name}:{l}:{c}: {}", e.message),
            None => format!("{name}: {}", e.message),
        })?;
        for d in docs {
            let r =
                ObjRef::of(&d.obj, default_ns).map_err(|e| format!("{name}:{}: {e}", d.line))?;
            let mut obj = d.obj;
            if r.res.namespaced {
                meta::metadata_mut(&mut obj).insert("namespace".into(), json!(r.namespace));
            }
            objs.push((format!("{name}:{}", d.line), r, obj));
        }
    }
    objs.sort_by_key(|(_, r, _)| kind_rank(r.res));
    Ok(objs)
}

pub(crate) async fn apply(ctx: &mut Ctx<'_>, a: &ApplySpec) -> StepResult {
    let mut texts = read_manifests(
        &ctx.dir,
        &a.files.as_ref().map(|f| f.list()).unwrap_or_default(),
    )?;
    if let Some(y) = &a.yaml {
        texts.push(("(inline YAML)".into(), y.clone()));
    }
    let ns = a.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    for (at, r, obj) in objects_of(&texts, &ns)? {
        ctx.client
            .apply(&r, &obj, FIELD_MANAGER, false)
            .await
            .map_err(|e| format!("{at}: {}: {e}", r.display()))?;
    }
    Ok(())
}

pub(crate) async fn delete(ctx: &mut Ctx<'_>, d: &DeleteSpec) -> StepResult {
    let targets: Vec<ObjRef> = match &d.files {
        Some(f) => {
            let texts = read_manifests(&ctx.dir, &f.list())?;
            let mut objs = objects_of(&texts, &ctx.namespace)?;
            objs.reverse();
            objs.into_iter().map(|(_, r, _)| r).collect()
        }
        None => refs(ctx, &d.obj)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect(),
    };
    for r in &targets {
        match ctx.client.delete(r).await {
            Ok(true) => {}
            Ok(false) if d.ignore_not_found || d.files.is_some() => {}
            Ok(false) => {
                return Err(format!(
                    "{} not found (set ignoreNotFound: true if that is fine)",
                    r.display()
                ))
            }
            Err(e) => return Err(format!("{}: {e}", r.display())),
        }
    }
    if d.wait {
        let timeout = d
            .timeout
            .as_deref()
            .map(duration)
            .transpose()?
            .unwrap_or(DEFAULT_TIMEOUT);
        let deadline = Instant::now() + timeout;
        for r in &targets {
            loop {
                match ctx.client.get(r).await {
                    Ok(None) => break,
                    Ok(Some(_)) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                    Ok(Some(_)) => {
                        return Err(format!(
                            "{} still exists after {}",
                            r.display(),
                            humantime::format_duration(timeout)
                        ))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
    Ok(())
}

pub(crate) async fn patch(ctx: &mut Ctx<'_>, p: &PatchSpec) -> StepResult {
    let ct = match p.kind.as_deref().unwrap_or("merge") {
        "merge" => "application/merge-patch+json",
        "json" => "application/json-patch+json",
        "strategic" => "application/strategic-merge-patch+json",
        other => {
            return Err(format!(
                "unknown patch type {other:?} (merge, json, strategic)"
            ))
        }
    };
    let mut targets = refs(ctx, &p.obj).await?;
    if targets.is_empty() {
        return Err(format!("no {} matched", p.obj.show()));
    }
    if let Some(n) = p.count {
        targets.truncate(n);
    }
    for (r, _) in targets {
        ctx.client
            .patch(&r, p.subresource.as_deref().unwrap_or(""), ct, &p.patch)
            .await
            .map_err(|e| format!("{}: {e}", r.display()))?;
    }
    Ok(())
}

pub(crate) async fn annotate(ctx: &mut Ctx<'_>, a: &AnnotateSpec) -> StepResult {
    let mut ann = a.annotations.clone();
    if let Some(f) = &a.fault {
        let v = if f == "none" || f.is_empty() {
            Value::Null
        } else {
            json!(f)
        };
        ann.insert(FAULT_ANNOTATION.into(), v);
    }
    let mut targets = refs(ctx, &a.obj).await?;
    if targets.is_empty() {
        return Err(format!("no {} matched", a.obj.show()));
    }
    if let Some(n) = a.count {
        if targets.len() < n {
            return Err(format!(
                "expected at least {n} objects for {}, got {}",
                a.obj.show(),
                targets.len()
            ));
        }
        targets.truncate(n);
    }
    for (r, _) in targets {
        ctx.client
            .patch(
                &r,
                "",
                "application/merge-patch+json",
                &json!({"metadata": {"annotations": ann}}),
            )
            .await
            .map_err(|e| format!("{}: {e}", r.display()))?;
    }
    Ok(())
}

/// The condition lists of an object: `status.conditions`, or for routes each parent's.
pub(crate) fn condition_lists(obj: &Value) -> Vec<(String, &Vec<Value>)> {
    if let Some(c) = obj.pointer("/status/conditions").and_then(Value::as_array) {
        return vec![(String::new(), c)];
    }
    obj.pointer("/status/parents")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    let who = format!("parent {}: ", path::text(&p["parentRef"]["name"]));
                    p["conditions"].as_array().map(|c| (who, c))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks one condition (every parent's, for routes).
pub(crate) fn check_condition(c: &CheckSpec, cond: &str, obj: &Value) -> Result<(), String> {
    let want = c
        .status
        .as_ref()
        .map(path::text)
        .unwrap_or_else(|| "True".into());
    let lists = condition_lists(obj);
    if lists.is_empty() {
        return Err(format!(
            "expected condition {cond}={want}, got no conditions yet"
        ));
    }
    for (who, list) in lists {
        let Some(found) = list.iter().find(|x| x["type"] == cond) else {
            let have: Vec<String> = list
                .iter()
                .map(|c| format!("{}={}", path::text(&c["type"]), path::text(&c["status"])))
                .collect();
            return Err(format!(
                "{who}expected condition {cond}={want}, got no {cond} condition (conditions: [{}])",
                have.join(", ")
            ));
        };
        let got = |k: &str| path::text(&found[k]);
        if got("status") != want
            || c.reason.as_ref().is_some_and(|r| *r != got("reason"))
            || c.message.as_ref().is_some_and(|m| *m != got("message"))
        {
            let mut exp = format!("{cond}={want}");
            if let Some(r) = &c.reason {
                exp.push_str(&format!(" reason {r:?}"));
            }
            if let Some(m) = &c.message {
                exp.push_str(&format!(" message {m:?}"));
            }
            return Err(format!(
                "{who}expected condition {exp}, got {cond}={} reason {:?} message {:?}",
                got("status"),
                got("reason"),
                got("message")
            ));
        }
    }
    Ok(())
}

/// Evaluates a check on one object: `Ok` when it holds, `Err(what was found)` otherwise.
pub(crate) fn check_object(c: &CheckSpec, obj: &Value) -> Result<(), String> {
    if let Some(cond) = &c.condition {
        check_condition(c, cond, obj)?;
    } else if let Some(st) = &c.status {
        path::subset(st, obj.get("status").unwrap_or(&Value::Null), ".status")?;
    }
    if let Some(o) = &c.object {
        path::subset(o, obj, "")?;
    }
    if let Some(p) = &c.path {
        let p = path::Path::parse(p)?;
        let got = p.text(obj);
        match (&c.equals, &c.matches, &got) {
            _ if c.absent => {
                if let Some(g) = got.filter(|g| !g.is_empty()) {
                    return Err(format!("{p}: expected nothing, got {g:?}"));
                }
            }
            (Some(e), _, Some(g)) if path::text(e) != *g => {
                return Err(format!("{p}: expected {:?}, got {g:?}", path::text(e)))
            }
            (_, Some(re), Some(g)) => {
                let re = regex::Regex::new(re).map_err(|e| e.to_string())?;
                if !re.is_match(g) {
                    return Err(format!("{p}: expected a match of /{re}/, got {g:?}"));
                }
            }
            (Some(e), _, None) => {
                return Err(format!("{p}: expected {:?}, got nothing", path::text(e)))
            }
            (None, None, None) => return Err(format!("{p}: expected a value, got nothing")),
            (_, Some(re), None) => {
                return Err(format!("{p}: expected a match of /{re}/, got nothing"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `wait` (default timeout 30 s) and `assert` (5 s): poll until the check holds.
pub(crate) async fn check(ctx: &mut Ctx<'_>, c: &CheckSpec, is_wait: bool) -> StepResult {
    let timeout = c
        .timeout
        .as_deref()
        .map(duration)
        .transpose()?
        .unwrap_or(if is_wait {
            DEFAULT_TIMEOUT
        } else {
            DEFAULT_ASSERT_TIMEOUT
        });
    let deadline = Instant::now() + timeout;
    loop {
        let last = match (&c.selector_mode(), c.deleted) {
            (true, _) => {
                let objs = refs(ctx, &c.obj).await?;
                let ok = objs
                    .iter()
                    .filter(|(_, o)| o.as_ref().is_some_and(|o| check_object(c, o).is_ok()))
                    .count();
                let want = c.count.unwrap_or(1);
                if (c.count.is_some() && ok == want) || (c.count.is_none() && ok >= 1) {
                    return Ok(());
                }
                format!(
                    "expected {want} {} matching, got {ok} (of {})",
                    c.obj.show(),
                    objs.len()
                )
            }
            (false, deleted) => {
                let r = one_ref(ctx, &c.obj)?;
                match (
                    ctx.client.get(&r).await.map_err(|e| e.to_string())?,
                    deleted,
                ) {
                    (None, true) => return Ok(()),
                    (Some(_), true) => {
                        format!("expected {} to be deleted; it still exists", r.display())
                    }
                    (None, false) => format!("{} not found", r.display()),
                    (Some(obj), false) => match check_object(c, &obj) {
                        Ok(()) => return Ok(()),
                        Err(e) => format!("{}: {e}", r.display()),
                    },
                }
            }
        };
        if Instant::now() >= deadline {
            return Err(if is_wait {
                format!(
                    "timed out after {}: {last}",
                    humantime::format_duration(timeout)
                )
            } else {
                last
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

impl CheckSpec {
    pub(crate) fn selector_mode(&self) -> bool {
        self.obj.selector.is_some() && self.obj.name.is_none() && self.obj.reference.is_none()
    }
}

pub(crate) async fn tls_secret(ctx: &mut Ctx<'_>, t: &TlsSecretSpec) -> StepResult {
    let g = tls::self_signed(&t.hosts)?;
    let ns = t.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": t.name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": tls::base64(g.cert_pem.as_bytes()), "tls.key": tls::base64(g.key_pem.as_bytes())},
    });
    let r = ObjRef::of(&secret, &ns)?;
    ctx.client
        .apply(&r, &secret, FIELD_MANAGER, false)
        .await
        .map_err(|e| format!("{}: {e}", r.display()))?;
    ctx.trusted.push(g.cert_der);
    Ok(())
}

//! The drop-in manifests folder (`up --watch DIR`): every `.yaml`, `.yml` and `.json` file below
//! DIR is applied, and kept applied as files are saved, renamed and deleted.
//!
//! # Design
//!
//! The watcher is level-based like the controller: a notify event only marks a folder dirty; after
//! a quiet [`DEBOUNCE`] the folder is rescanned and every file whose content changed (or that
//! failed last time) is re-applied. That handles editors uniformly: atomic-rename saves, bursts of
//! writes, swap/backup files (ignored by name, see [`is_manifest`]) and whole directories moved in
//! or out.
//!
//! Objects are written through the sandbox's own HTTP API (see [`crate::client`]), so
//! they get exactly kubectl's admission: server-side apply with field manager [`FIELD_MANAGER`]
//! ("what the file says wins"), defaults, validation and its error messages. Each file is
//! all-or-nothing: every object is first applied with `dryRun=All`; one rejection rejects the file,
//! and the objects its last good version declared keep running.
//!
//! Ownership lives on the objects themselves, as annotations naming the source file (relative to
//! the folder) and the folder ([`ANN_SOURCE_FILE`], [`ANN_SOURCE_DIR`]), so it survives restarts:
//! at start, objects annotated with a file that no longer declares them are removed.

use crate::client::{ApiClient, ClientError, ObjRef};
use crate::manifest::{self, kind_rank};
use crate::meta;
use crate::resources::RESOURCES;
use notify::{EventKind, RecursiveMode, Watcher as _};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::manifest::is_manifest;

/// Field manager of the watcher's server-side applies.
pub const FIELD_MANAGER: &str = "agc-sandbox-watch";
/// Annotation naming the file (relative to its folder) that declares an object.
pub const ANN_SOURCE_FILE: &str = "agc-sandbox.dev/source-file";
/// Annotation naming the watched folder (absolute) the source file is in.
pub const ANN_SOURCE_DIR: &str = "agc-sandbox.dev/source-dir";
/// Quiet time after the last file event before a folder is rescanned.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest a burst of events can postpone a rescan.
const MAX_BURST: Duration = Duration::from_millis(500);

/// Errors that stop the watcher from starting.
#[derive(Debug, thiserror::Error)]
pub enum DirWatchError {
    #[error("failed to watch {dir}: {reason}")]
    Folder { dir: String, reason: String },
    #[error("failed to list the objects the watcher owns: {0}")]
    Api(#[from] ClientError),
}

/// One line of output: what was applied or removed, or why a file was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `manifests/websocket/gateway.yaml: gateway.gateway.networking.k8s.io/gateway-01 configured`
    Changed(String),
    /// `manifests/websocket/route.yaml:7:3: error: ...`
    Rejected(String),
    /// `manifests/loop: warning: symlink loop ...`, once per path.
    Warning(String),
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Changed(s) | Report::Rejected(s) | Report::Warning(s) => f.write_str(s),
        }
    }
}

/// Where reports go (stdout/stderr in `up`, a channel in tests).
pub type Reporter = Arc<dyn Fn(Report) + Send + Sync>;

/// What the watcher knows about one file.
#[derive(Debug, Default)]
struct FileState {
    /// Hash of the content last processed (`None`: not read yet in this process).
    hash: Option<u64>,
    /// The objects its last good version declared.
    owned: BTreeSet<ObjRef>,
    /// Whether its current content was rejected (it is then retried on every rescan).
    failed: bool,
    /// The last rejection printed, so a retry that fails the same way stays quiet.
    reported: Option<String>,
}

/// One watched folder.
struct Folder {
    /// Canonical absolute path (recorded in [`ANN_SOURCE_DIR`]).
    root: PathBuf,
    /// The folder as the user named it, for output.
    display: String,
    files: BTreeMap<PathBuf, FileState>,
}

impl Folder {
    fn show(&self, rel: &Path) -> String {
        format!("{}/{}", self.display, rel.display())
    }
}

/// The running watcher: call [`DirWatch::run`] after [`DirWatch::start`].
pub struct DirWatch {
    client: ApiClient,
    folders: Vec<Folder>,
    report: Reporter,
    /// Follow symlinks whose target is outside the watched folder (`--watch-follow-symlinks`).
    follow_symlinks: bool,
    /// Walk warnings already printed (each is printed once).
    warned: HashSet<String>,
    events: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    /// Kept alive for as long as the folders are watched.
    _watcher: notify::RecommendedWatcher,
}

/// An object of a parsed file, with the line of its document.
type FileObject = (ObjRef, Value, usize);

/// An object a file declares, ready to apply.
struct Planned {
    folder: usize,
    rel: PathBuf,
    r: ObjRef,
    obj: Value,
    /// The dry run found it identical to the live object: nothing to write.
    unchanged: bool,
    created: bool,
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// The object without the fields a write always changes, for "unchanged" detection.
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in ["managedFields", "resourceVersion", "generation"] {
            m.remove(k);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    o
}

/// Whether an event path may concern a manifest (or a directory holding some).
fn relevant(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    if rel.as_os_str().is_empty() || is_manifest(rel) {
        return true;
    }
    // A directory (moved in or out, or removed): no extension and not an editor file.
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    !name.contains('.') && name != "4913" && !name.ends_with('~') && !name.starts_with('#')
}

impl DirWatch {
    /// Watches `dirs`, applies what they declare and removes what they no longer declare. Returns
    /// once that first pass is done; [`DirWatch::run`] then follows changes.
    pub async fn start(
        client: ApiClient,
        dirs: &[PathBuf],
        report: Reporter,
    ) -> Result<DirWatch, DirWatchError> {
        DirWatch::start_with(client, dirs, report, false).await
    }

    /// [`DirWatch::start`], following symlinks out of the folders when `follow_symlinks`.
    pub async fn start_with(
        client: ApiClient,
        dirs: &[PathBuf],
        report: Reporter,
        follow_symlinks: bool,
    ) -> Result<DirWatch, DirWatchError> {
        let (tx, rx) = mpsc::unbounded_channel();
        // notify's recursive inotify watch walks the tree itself; it must not follow links
        // either, or a link to `..` makes it watch everything above the folder.
        let config = notify::Config::default().with_follow_symlinks(follow_symlinks);
        let mut watcher = notify::RecommendedWatcher::new(
            move |ev| {
                let _ = tx.send(ev);
            },
            config,
        )
        .map_err(|e| DirWatchError::Folder {
            dir: String::new(),
            reason: e.to_string(),
        })?;
        let mut folders = Vec::new();
        for dir in dirs {
            let display = dir.display().to_string().trim_end_matches('/').to_string();
            let bad = |reason: String| DirWatchError::Folder {
                dir: display.clone(),
                reason,
            };
            let root = std::fs::canonicalize(dir).map_err(|e| bad(e.to_string()))?;
            if !root.is_dir() {
                return Err(bad("not a directory".into()));
            }
            watcher
                .watch(&root, RecursiveMode::Recursive)
                .map_err(|e| bad(e.to_string()))?;
            folders.push(Folder {
                root,
                display,
                files: BTreeMap::new(),
            });
        }
        let mut dw = DirWatch {
            client,
            folders,
            report,
            follow_symlinks,
            warned: HashSet::new(),
            events: rx,
            _watcher: watcher,
        };
        dw.adopt().await?;
        let all: Vec<usize> = (0..dw.folders.len()).collect();
        dw.sync(&all).await;
        Ok(dw)
    }

    /// Follows changes until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let mut dirty = HashSet::new();
            tokio::select! {
                _ = &mut shutdown => return,
                ev = self.events.recv() => match ev {
                    None => return,
                    Some(ev) => self.mark(ev, &mut dirty),
                },
            }
            // Gather the rest of the burst: wait for a quiet DEBOUNCE (bounded by MAX_BURST).
            let burst_end = tokio::time::Instant::now() + MAX_BURST;
            loop {
                let quiet = (tokio::time::Instant::now() + DEBOUNCE).min(burst_end);
                match tokio::time::timeout_at(quiet, self.events.recv()).await {
                    Ok(Some(ev)) => self.mark(ev, &mut dirty),
                    Ok(None) | Err(_) => break,
                }
            }
            if !dirty.is_empty() {
                let mut dirty: Vec<usize> = dirty.into_iter().collect();
                dirty.sort();
                self.sync(&dirty).await;
            }
        }
    }

    /// Marks the folders an event concerns.
    fn mark(&self, ev: notify::Result<notify::Event>, dirty: &mut HashSet<usize>) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(err) => {
                tracing::warn!(cause = %err, "file watch error; rescanning");
                dirty.extend(0..self.folders.len());
                return;
            }
        };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        for (i, f) in self.folders.iter().enumerate() {
            if ev.paths.iter().any(|p| relevant(&f.root, p)) || ev.need_rescan() {
                dirty.insert(i);
            }
        }
    }

    /// Records which objects each file owned in an earlier run (from the annotations), so files
    /// that disappeared or stopped declaring them get their objects removed.
    async fn adopt(&mut self) -> Result<(), DirWatchError> {
        for res in RESOURCES.iter() {
            for obj in self.client.list(res, None, None).await? {
                let (Some(file), Some(dir)) = (
                    meta::annotation(&obj, ANN_SOURCE_FILE),
                    meta::annotation(&obj, ANN_SOURCE_DIR),
                ) else {
                    continue;
                };
                let Some(folder) = self.folders.iter_mut().find(|f| f.root.as_os_str() == dir)
                else {
                    continue;
                };
                let r = ObjRef {
                    res,
                    namespace: meta::namespace(&obj).to_string(),
                    name: meta::name(&obj).to_string(),
                };
                folder
                    .files
                    .entry(PathBuf::from(file))
                    .or_default()
                    .owned
                    .insert(r);
            }
        }
        Ok(())
    }

    fn changed(&self, folder: usize, rel: &Path, what: String) {
        (self.report)(Report::Changed(format!(
            "{}: {what}",
            self.folders[folder].show(rel)
        )));
    }

    /// Reports a rejected file (`loc`: line and column; column 0 when only the line is known).
    fn reject(&mut self, folder: usize, rel: &Path, loc: Option<(usize, usize)>, why: String) {
        let f = &mut self.folders[folder];
        let at = match loc {
            Some((l, 0)) => format!("{}:{l}", f.show(rel)),
            Some((l, c)) => format!("{}:{l}:{c}", f.show(rel)),
            None => f.show(rel),
        };
        let st = f.files.entry(rel.to_path_buf()).or_default();
        let keeps = if st.owned.is_empty() {
            "nothing was applied"
        } else {
            "the objects of its last good version keep running"
        };
        st.failed = true;
        let line = format!("{at}: error: {why} (file rejected; {keeps})");
        if st.reported.as_deref() == Some(line.as_str()) {
            return;
        }
        st.reported = Some(line.clone());
        (self.report)(Report::Rejected(line));
    }

    /// Rescans `folders`, applies changed files and removes what is no longer declared.
    async fn sync(&mut self, folders: &[usize]) {
        // 1. Read and parse every file that is new, changed or failed last time.
        let mut parsed: Vec<(usize, PathBuf, u64, Vec<manifest::Doc>)> = Vec::new();
        let mut gone: Vec<(usize, PathBuf)> = Vec::new();
        for &fi in folders {
            // The walk touches the disk and may be large: off the async runtime.
            let root = self.folders[fi].root.clone();
            let follow = self.follow_symlinks;
            let scan = tokio::task::spawn_blocking(move || manifest::scan_tree(&root, follow))
                .await
                .unwrap_or_default();
            for w in scan.warnings {
                let line = format!("{}/{w}", self.folders[fi].display);
                if self.warned.insert(line.clone()) {
                    (self.report)(Report::Warning(format!("warning: {line}")));
                }
            }
            let on_disk = scan.files;
            let present: HashSet<&PathBuf> = on_disk.iter().collect();
            for rel in self.folders[fi].files.keys() {
                if !present.contains(rel) {
                    gone.push((fi, rel.clone()));
                }
            }
            for rel in on_disk {
                let bytes = match std::fs::read(self.folders[fi].root.join(&rel)) {
                    Ok(b) => b,
                    // Removed between the scan and the read: the next event rescans.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        self.reject(fi, &rel, None, format!("failed to read the file: {e}"));
                        continue;
                    }
                };
                let h = hash_of(&bytes);
                let state = self.folders[fi].files.get(&rel);
                if state.is_some_and(|s| s.hash == Some(h) && !s.failed) {
                    continue;
                }
                self.folders[fi].files.entry(rel.clone()).or_default().hash = Some(h);
                let text = match String::from_utf8(bytes) {
                    Ok(t) => t,
                    Err(_) => {
                        self.reject(fi, &rel, None, "the file is not UTF-8 text".into());
                        continue;
                    }
                };
                match manifest::parse(&text) {
                    Ok(docs) => parsed.push((fi, rel, h, docs)),
                    Err(e) => self.reject(fi, &rel, e.location, e.message),
                }
            }
        }

        // 2. Turn documents into objects carrying the ownership annotations.
        let mut files: Vec<(usize, PathBuf, Vec<FileObject>)> = Vec::new();
        for (fi, rel, _, docs) in parsed {
            let mut objs = Vec::new();
            let mut seen = HashSet::new();
            let mut bad = None;
            for doc in docs {
                let r = match ObjRef::of(&doc.obj, "default") {
                    Ok(r) => r,
                    Err(e) => {
                        bad = Some((doc.line, format!("document {}: {e}", doc.index)));
                        break;
                    }
                };
                if !seen.insert(r.clone()) {
                    bad = Some((
                        doc.line,
                        format!("{} is declared twice in this file", r.display()),
                    ));
                    break;
                }
                let mut obj = doc.obj;
                let md = meta::metadata_mut(&mut obj);
                if r.res.namespaced {
                    md.insert("namespace".into(), json!(r.namespace));
                }
                let ann = meta::child_map(md, "annotations");
                ann.insert(
                    ANN_SOURCE_FILE.into(),
                    json!(rel.to_string_lossy().to_string()),
                );
                ann.insert(
                    ANN_SOURCE_DIR.into(),
                    json!(self.folders[fi].root.to_string_lossy().to_string()),
                );
                objs.push((r, obj, doc.line));
            }
            match bad {
                Some((line, why)) => self.reject(fi, &rel, Some((line, 0)), why),
                None => files.push((fi, rel, objs)),
            }
        }

        // 3. Dry-run every object; a file with any rejection is rejected whole. Namespaces that
        // this pass creates do not exist yet, so "namespace not found" is expected for them.
        let new_namespaces: HashSet<String> = files
            .iter()
            .flat_map(|(_, _, objs)| objs.iter())
            .filter(|(r, _, _)| r.res.kind == "Namespace")
            .map(|(r, _, _)| r.name.clone())
            .collect();
        let mut plan: Vec<Planned> = Vec::new();
        for (fi, rel, objs) in files {
            let mut file_plan = Vec::new();
            let mut bad = None;
            for (r, obj, line) in objs {
                let live = match self.client.get(&r).await {
                    Ok(l) => l,
                    Err(e) => {
                        bad = Some((line, format!("{}: {e}", r.display())));
                        break;
                    }
                };
                let unchanged = match self.client.apply(&r, &obj, FIELD_MANAGER, true).await {
                    Ok(would) => live
                        .as_ref()
                        .is_some_and(|l| comparable(l) == comparable(&would)),
                    Err(ClientError::Api {
                        code: 404, message, ..
                    }) if new_namespaces.contains(&r.namespace)
                        && message.starts_with("namespaces ") =>
                    {
                        false
                    }
                    Err(e) => {
                        bad = Some((line, format!("{}: {e}", r.display())));
                        break;
                    }
                };
                file_plan.push(Planned {
                    folder: fi,
                    rel: rel.clone(),
                    created: live.is_none(),
                    r,
                    obj,
                    unchanged,
                });
            }
            match bad {
                Some((line, why)) => self.reject(fi, &rel, Some((line, 0)), why),
                None => plan.extend(file_plan),
            }
        }

        // 4. Apply, prerequisites first.
        plan.sort_by_key(|p| kind_rank(p.r.res));
        let mut declared: HashMap<(usize, PathBuf), BTreeSet<ObjRef>> = HashMap::new();
        let mut failed_now: HashSet<(usize, PathBuf)> = HashSet::new();
        for p in &plan {
            declared
                .entry((p.folder, p.rel.clone()))
                .or_default()
                .insert(p.r.clone());
        }
        for p in plan {
            let key = (p.folder, p.rel.clone());
            if failed_now.contains(&key) {
                continue;
            }
            if p.unchanged {
                self.changed(p.folder, &p.rel, format!("{} unchanged", p.r.display()));
                continue;
            }
            match self.client.apply(&p.r, &p.obj, FIELD_MANAGER, false).await {
                Ok(_) => {
                    let verb = if p.created { "created" } else { "configured" };
                    self.changed(p.folder, &p.rel, format!("{} {verb}", p.r.display()));
                }
                Err(e) => {
                    self.reject(p.folder, &p.rel, None, format!("{}: {e}", p.r.display()));
                    // What was applied of it is owned from now on.
                    if let Some(set) = declared.get(&key) {
                        let st = self.folders[p.folder]
                            .files
                            .entry(p.rel.clone())
                            .or_default();
                        st.owned.extend(set.iter().cloned());
                    }
                    failed_now.insert(key);
                }
            }
        }

        // 5. Remove what good files no longer declare, and what removed files declared.
        let mut removals: Vec<(usize, PathBuf, ObjRef)> = Vec::new();
        for ((fi, rel), now) in declared {
            if failed_now.contains(&(fi, rel.clone())) {
                continue;
            }
            let st = self.folders[fi].files.entry(rel.clone()).or_default();
            st.failed = false;
            st.reported = None;
            let before = std::mem::replace(&mut st.owned, now.clone());
            removals.extend(
                before
                    .into_iter()
                    .filter(|r| !now.contains(r))
                    .map(|r| (fi, rel.clone(), r)),
            );
        }
        for (fi, rel) in gone {
            if let Some(st) = self.folders[fi].files.remove(&rel) {
                removals.extend(st.owned.into_iter().map(|r| (fi, rel.clone(), r)));
            }
        }
        removals.sort_by_key(|(_, _, r)| std::cmp::Reverse(kind_rank(r.res)));
        for (fi, rel, r) in removals {
            self.remove(fi, &rel, &r).await;
        }
    }

    /// Deletes an object a file stopped declaring, unless another file has taken it over.
    async fn remove(&mut self, fi: usize, rel: &Path, r: &ObjRef) {
        let live = match self.client.get(r).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                self.reject(fi, rel, None, format!("{}: {e}", r.display()));
                return;
            }
        };
        let root = self.folders[fi].root.to_string_lossy().to_string();
        let owner_file = meta::annotation(&live, ANN_SOURCE_FILE);
        let owner_dir = meta::annotation(&live, ANN_SOURCE_DIR);
        if owner_file != Some(&*rel.to_string_lossy()) || owner_dir != Some(root.as_str()) {
            return;
        }
        match self.client.delete(r).await {
            Ok(true) => self.changed(fi, rel, format!("{} deleted", r.display())),
            Ok(false) => {}
            Err(e) => self.reject(
                fi,
                rel,
                None,
                format!("failed to delete {}: {e}", r.display()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_on_editor_files_are_ignored() {
        let root = Path::new("/w");
        assert!(relevant(root, Path::new("/w/gateway.yaml")));
        assert!(relevant(root, Path::new("/w/sub")));
        assert!(!relevant(root, Path::new("/w/.gateway.yaml.swp")));
        assert!(!relevant(root, Path::new("/w/4913")));
        assert!(!relevant(root, Path::new("/w/gateway.yaml~")));
        assert!(!relevant(root, Path::new("/elsewhere/gateway.yaml")));
    }

    #[test]
    fn comparable_ignores_write_bookkeeping() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]}, "spec": {"x": 1}, "status": {"y": 1}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "2", "managedFields": [2]}, "spec": {"x": 1}});
        assert_eq!(comparable(&a), comparable(&b));
    }
}

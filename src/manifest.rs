//! Manifest files: multi-document YAML (JSON is YAML too), `kind: List` expanded, and the order
//! in which objects are applied so prerequisites come first.

use crate::resources::ResourceDef;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;

/// One object of a manifest file.
#[derive(Debug, Clone)]
pub struct Doc {
    pub obj: Value,
    /// 1-based line where its YAML document starts.
    pub line: usize,
    /// 1-based position of its document in the file.
    pub index: usize,
}

/// A manifest file that could not be read as YAML.
#[derive(Debug, thiserror::Error)]
#[error("{}{message}", location.map(|(l, c)| format!("{l}:{c}: ")).unwrap_or_default())]
pub struct ParseError {
    /// 1-based line and column, when the parser knows them.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

/// Whether a file below a watched folder is a manifest: `.yaml`, `.yml` or `.json`, and not
/// hidden, an editor's swap/backup/lock file or a temporary file (`.swp`, `~`, `.#*`, vim's
/// `4913` probe, `.tmp`). `rel` is the path relative to the folder.
pub fn is_manifest(rel: &Path) -> bool {
    if rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    {
        return false;
    }
    let Some(name) = rel.file_name().map(|n| n.to_string_lossy().to_string()) else {
        return false;
    };
    if name == "4913" || name.ends_with('~') || name.starts_with('#') {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// Lists the manifest files below `root` (relative paths, sorted), skipping hidden
/// directories; symlinks are followed only inside `root` (see [`scan_tree`]).
pub fn scan_dir(root: &Path) -> Vec<std::path::PathBuf> {
    scan_tree(root, false).files
}

/// What a walk of a folder found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Manifest files, relative to the root, sorted.
    pub files: Vec<std::path::PathBuf>,
    /// Links not followed (loops, targets outside the folder) and limits hit, one line each,
    /// naming the path (relative to the root).
    pub warnings: Vec<String>,
}

/// Deepest folder nesting walked, and most entries looked at, before the walk stops.
pub const MAX_DEPTH: usize = 64;
pub const MAX_ENTRIES: usize = 100_000;

/// Walks `root` without ever looping: each directory is entered once (by device and inode, so
/// a symlink back to an ancestor is a loop, reported and skipped), a symlink whose target is
/// outside `root` is skipped unless `follow_outside`, and the walk stops at [`MAX_DEPTH`] and
/// [`MAX_ENTRIES`]. Blocking: call it off the async runtime.
pub fn scan_tree(root: &Path, follow_outside: bool) -> Scan {
    use std::collections::HashSet;
    #[cfg(unix)]
    fn id(m: &std::fs::Metadata) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        (m.dev(), m.ino())
    }
    #[cfg(not(unix))]
    fn id(_: &std::fs::Metadata) -> (u64, u64) {
        (0, 0)
    }
    let mut scan = Scan::default();
    let canon_root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let mut visited: HashSet<(u64, u64)> = HashSet::new();
    if let Ok(m) = std::fs::metadata(root) {
        visited.insert(id(&m));
    }
    // (directory as reached through the tree, depth)
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut entries = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in rd.flatten() {
            entries += 1;
            if entries > MAX_ENTRIES {
                scan.warnings.push(format!(
                    "more than {MAX_ENTRIES} entries: the rest of the folder is not read"
                ));
                scan.files.sort();
                return scan;
            }
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
            if is_link {
                let Ok(target) = std::fs::canonicalize(&path) else {
                    continue; // dangling
                };
                if !follow_outside && !target.starts_with(&canon_root) {
                    scan.warnings.push(format!(
                        "{}: symlink to {} outside the watched folder, not followed (--watch-follow-symlinks follows it)",
                        rel.display(),
                        target.display()
                    ));
                    continue;
                }
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                if !visited.insert(id(&meta)) {
                    scan.warnings.push(format!(
                        "{}: symlink loop (the folder is already part of the walk), not followed",
                        rel.display()
                    ));
                    continue;
                }
                if depth + 1 > MAX_DEPTH {
                    scan.warnings.push(format!(
                        "{}: nested deeper than {MAX_DEPTH} folders, not read",
                        rel.display()
                    ));
                    continue;
                }
                stack.push((path, depth + 1));
            } else if is_manifest(rel) {
                scan.files.push(rel.to_path_buf());
            }
        }
    }
    scan.files.sort();
    scan
}

/// Lines (1-based) where each YAML document starts: line 1, and the line after each `---`.
fn doc_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            if i == 0 {
                continue;
            }
            starts.push(i + 2);
        }
    }
    starts
}

/// Parses every object of a manifest text. Empty documents are skipped; `kind: *List` documents
/// contribute their `items`.
pub fn parse(text: &str) -> Result<Vec<Doc>, ParseError> {
    let starts = doc_starts(text);
    let mut out = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).map_err(|e| ParseError {
            location: e.location().map(|l| (l.line(), l.column())),
            message: format!("invalid YAML: {e}"),
        })?;
        let line = starts.get(i).copied().unwrap_or(1);
        let index = i + 1;
        match v {
            Value::Null => {}
            Value::Object(ref m) => {
                let is_list = m
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && m.get("items").is_some_and(Value::is_array);
                if is_list {
                    for item in m["items"].as_array().into_iter().flatten() {
                        if !item.is_object() {
                            return Err(ParseError {
                                location: Some((line, 1)),
                                message: format!("document {index}: every item of a List must be an object"),
                            });
                        }
                        out.push(Doc {
                            obj: item.clone(),
                            line,
                            index,
                        });
                    }
                } else {
                    out.push(Doc {
                        obj: v,
                        line,
                        index,
                    });
                }
            }
            _ => {
                return Err(ParseError {
                    location: Some((line, 1)),
                    message: format!(
                        "document {index} is not an object (a manifest has apiVersion, kind and metadata)"
                    ),
                })
            }
        }
    }
    Ok(out)
}

/// Apply order: prerequisites first (Namespace, then ConfigMap/Secret, Service, workloads, then
/// Gateway API and AGC kinds from classes down to policies). Deletions go in reverse.
pub fn kind_rank(res: &ResourceDef) -> u8 {
    match res.kind {
        "Namespace" => 0,
        "ConfigMap" | "Secret" => 1,
        "Service" => 2,
        "Endpoints" | "EndpointSlice" => 3,
        "Deployment" | "ReplicaSet" | "Pod" => 4,
        "GatewayClass" => 5,
        "ApplicationLoadBalancer" => 6,
        "Gateway" | "ReferenceGrant" => 7,
        "HTTPRoute" | "GRPCRoute" => 8,
        "Event" => 10,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_files_and_lists() {
        let text = "# comment\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n- {apiVersion: v1, kind: Namespace, metadata: {name: c}}\n";
        let docs = parse(text).unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].line, 1);
        assert_eq!(docs[1].line, 7);
        assert_eq!(docs[1].obj["metadata"]["name"], "b");
    }

    #[test]
    fn yaml_errors_carry_line_and_column() {
        let err = parse("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [a\n").unwrap_err();
        let (line, _) = err.location.expect("location");
        assert!(line >= 4, "{err}");
        let err = parse("apiVersion: v1\n---\n- a\n").unwrap_err();
        assert!(err.to_string().contains("document 2"), "{err}");
    }

    #[test]
    fn json_files_parse() {
        let docs =
            parse(r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"j"}}"#).unwrap();
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn editor_files_are_ignored() {
        for ignored in [
            ".gateway.yaml.swp",
            "gateway.yaml~",
            ".#gateway.yaml",
            "4913",
            "gateway.yaml.tmp",
            ".hidden/route.yaml",
            "notes.txt",
            "#gateway.yaml#",
        ] {
            assert!(!is_manifest(Path::new(ignored)), "{ignored}");
        }
        for taken in ["gateway.yaml", "sub/route.yml", "x.JSON"] {
            assert!(is_manifest(Path::new(taken)), "{taken}");
        }
    }
}

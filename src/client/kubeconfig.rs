//! How to reach an API server ([`Access`]), and the kubeconfig file that carries it: written by
//! `up` for kubectl and every other client, read by `scenario run --kubeconfig`.
//!
//! Written with serde (not by hand), so a token or path with `#` or `: ` in it stays one YAML
//! scalar. Only the fields `up` writes are read back: one cluster with `server` and
//! `certificate-authority-data`, one user with `token`, one context.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What the kubeconfig module can fail with.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("failed to read the kubeconfig {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the kubeconfig {} is not valid YAML", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("the kubeconfig {} has no context {context:?} (or its cluster or user is missing)", path.display())]
    NoContext { path: PathBuf, context: String },
    #[error("the kubeconfig {}: certificate-authority-data is not base64", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: base64::DecodeError,
    },
    #[error("failed to write the kubeconfig")]
    Write(#[source] crate::pki::PkiError),
    #[error("failed to encode the kubeconfig")]
    Encode(#[source] serde_yaml::Error),
}

/// How to reach one API server.
#[derive(Clone, PartialEq, Eq)]
pub struct Access {
    /// `https://127.0.0.1:6443` (or `http://...` in `--insecure-http` mode).
    pub server: String,
    /// The CA certificate (PEM) that signed the server's certificate.
    pub ca_pem: Option<String>,
    /// The bearer token to send.
    pub token: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("server", &self.server)
            .field("ca", &self.ca_pem.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Access {
    /// Plain access to `server` (no CA, no token).
    pub fn plain(server: &str) -> Access {
        Access {
            server: server.to_string(),
            ca_pem: None,
            token: None,
        }
    }
}

/// The context (and cluster and user) name `up` writes.
pub const CONTEXT: &str = "agc-sandbox";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    current_context: String,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Serialize, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterBody,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterBody {
    server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    certificate_authority_data: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct NamedContext {
    name: String,
    context: ContextBody,
}

#[derive(Serialize, Deserialize)]
struct ContextBody {
    cluster: String,
    user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: UserBody,
}

#[derive(Serialize, Deserialize, Default)]
struct UserBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// Writes a kubeconfig for `access` to `path` (0600: it holds the token), with the context
/// [`CONTEXT`] selected and namespace `default`.
pub fn write(path: &Path, access: &Access) -> Result<(), KubeconfigError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let doc = Kubeconfig {
        api_version: "v1".into(),
        kind: "Config".into(),
        clusters: vec![NamedCluster {
            name: CONTEXT.into(),
            cluster: ClusterBody {
                server: access.server.clone(),
                certificate_authority_data: access.ca_pem.as_ref().map(|p| b64.encode(p)),
            },
        }],
        contexts: vec![NamedContext {
            name: CONTEXT.into(),
            context: ContextBody {
                cluster: CONTEXT.into(),
                user: CONTEXT.into(),
                namespace: Some("default".into()),
            },
        }],
        current_context: CONTEXT.into(),
        users: vec![NamedUser {
            name: CONTEXT.into(),
            user: UserBody {
                token: access.token.clone(),
            },
        }],
    };
    let text = serde_yaml::to_string(&doc).map_err(KubeconfigError::Encode)?;
    crate::pki::write_private(path, text.as_bytes()).map_err(KubeconfigError::Write)
}

/// Reads the current context's server, CA and token from the kubeconfig at `path`.
pub fn read(path: &Path) -> Result<Access, KubeconfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| KubeconfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let doc: Kubeconfig = serde_yaml::from_str(&text).map_err(|source| KubeconfigError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    let no_context = || KubeconfigError::NoContext {
        path: path.to_path_buf(),
        context: doc.current_context.clone(),
    };
    let ctx = doc
        .contexts
        .iter()
        .find(|c| c.name == doc.current_context)
        .ok_or_else(no_context)?;
    let cluster = doc
        .clusters
        .iter()
        .find(|c| c.name == ctx.context.cluster)
        .ok_or_else(no_context)?;
    let token = doc
        .users
        .iter()
        .find(|u| u.name == ctx.context.user)
        .and_then(|u| u.user.token.clone());
    let ca_pem = match &cluster.cluster.certificate_authority_data {
        Some(d) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .map_err(|source| KubeconfigError::BadCa {
                    path: path.to_path_buf(),
                    source,
                })?;
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        None => None,
    };
    Ok(Access {
        server: cluster.cluster.server.clone(),
        ca_pem,
        token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_awkward_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        let access = Access {
            server: "https://127.0.0.1:6443".into(),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n".into()),
            token: Some("a#b: c'd\"e".into()),
        };
        write(&path, &access).unwrap();
        assert_eq!(read(&path).unwrap(), access);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("current-context: agc-sandbox"), "{text}");
        assert!(text.contains("certificate-authority-data:"), "{text}");
    }
}

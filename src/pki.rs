//! The API server's TLS material and credential, generated on first start and kept in the data
//! directory, as kind does for its clusters.
//!
//! Layout (every file 0600, the folder 0700):
//! - `pki/ca.key`, `pki/ca.crt`: the sandbox's own CA, kept across restarts so kubeconfigs
//!   copied earlier keep working (its parameters are fixed, so the key alone can re-issue it).
//! - `pki/apiserver.crt`, `pki/apiserver.key`: the serving certificate, issued anew on every
//!   start for `localhost`, the loopback addresses and the address the API binds.
//! - `pki/token`: the bearer token every request must carry (unless `--token-file` names one).
//!
//! A leaf module: it knows files and certificates, nothing of the rest of the sandbox.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What generating or loading the material can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("failed to {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to generate the API server's {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{} is not a usable private key (delete the pki folder to start over)", path.display())]
    BadKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
}

/// The API server's TLS material and bearer token.
#[derive(Clone)]
pub struct ApiPki {
    /// The CA certificate (PEM) clients trust.
    pub ca_pem: String,
    /// The serving certificate (PEM) and its key.
    pub cert_pem: String,
    pub key_pem: String,
    /// The bearer token requests must present.
    pub token: String,
}

impl std::fmt::Debug for ApiPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiPki").finish_non_exhaustive()
    }
}

impl ApiPki {
    /// Loads the CA and token from `data_dir/pki` (creating them on first start) and issues a
    /// serving certificate for `bind` plus `localhost`, `127.0.0.1` and `::1`. `token`
    /// (from `--token-file`) replaces the generated one.
    pub fn load_or_create(
        data_dir: &Path,
        bind: IpAddr,
        token: Option<String>,
    ) -> Result<ApiPki, PkiError> {
        let dir = data_dir.join("pki");
        create_private_dir(&dir)?;
        let ca_key_path = dir.join("ca.key");
        let ca_key = match read_optional(&ca_key_path)? {
            Some(pem) => KeyPair::from_pem(&pem).map_err(|source| PkiError::BadKey {
                path: ca_key_path.clone(),
                source,
            })?,
            None => {
                let key = KeyPair::generate().map_err(gen("CA key"))?;
                write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
                key
            }
        };
        let ca_params = ca_params();
        // ECDSA signatures differ each time: keep the certificate clients were given.
        let ca_cert_path = dir.join("ca.crt");
        let ca_pem = match read_optional(&ca_cert_path)? {
            Some(pem) if pem.contains("BEGIN CERTIFICATE") => pem,
            _ => {
                let pem = ca_params.self_signed(&ca_key).map_err(gen("CA"))?.pem();
                write_private(&ca_cert_path, pem.as_bytes())?;
                pem
            }
        };
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().map_err(gen("serving key"))?;
        let serving = serving_params(bind)
            .signed_by(&serving_key, &issuer)
            .map_err(gen("serving certificate"))?;
        let cert_pem = serving.pem();
        let key_pem = serving_key.serialize_pem();
        write_private(&dir.join("apiserver.crt"), cert_pem.as_bytes())?;
        write_private(&dir.join("apiserver.key"), key_pem.as_bytes())?;

        let token = match token {
            Some(t) => t,
            None => {
                let path = dir.join("token");
                match read_optional(&path)?.map(|t| t.trim().to_string()) {
                    Some(t) if !t.is_empty() => t,
                    _ => {
                        let t = random_token()?;
                        write_private(&path, t.as_bytes())?;
                        t
                    }
                }
            }
        };
        Ok(ApiPki {
            ca_pem,
            cert_pem,
            key_pem,
            token,
        })
    }
}

fn gen(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Generate { what, source }
}

/// The CA's parameters: fixed, so the certificate derived from the stored key is the same
/// authority on every start.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "agc-sandbox-ca");
    dn.push(DnType::OrganizationName, "agc-sandbox");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    p
}

fn serving_params(bind: IpAddr) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "agc-sandbox-apiserver");
    p.distinguished_name = dn;
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    if !bind.is_unspecified() && !ips.contains(&bind) {
        ips.push(bind);
    }
    let mut sans: Vec<SanType> = ips.into_iter().map(SanType::IpAddress).collect();
    if let Ok(name) = "localhost".try_into() {
        sans.push(SanType::DnsName(name));
    }
    p.subject_alt_names = sans;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    let now = time_now();
    p.not_before = now - std::time::Duration::from_secs(3600);
    p.not_after = now + std::time::Duration::from_secs(365 * 24 * 3600);
    p
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// 32 bytes from the operating system's CSPRNG, hex-encoded.
fn random_token() -> Result<String, PkiError> {
    let mut buf = [0u8; 32];
    getrandom::fill(&mut buf).map_err(|e| PkiError::Io {
        what: "read random bytes for",
        path: PathBuf::from("the API token"),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn read_optional(path: &Path) -> Result<Option<String>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PkiError::Io {
            what: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates `dir` (and parents) and makes it 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let io = |what, source| PkiError::Io {
        what,
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create", e))?;
    set_mode(dir, 0o700).map_err(|e| io("restrict the permissions of", e))
}

/// Writes `bytes` to `path` atomically (a temp file renamed over it), readable by the owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let io = |what, source| PkiError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp).map_err(|e| io("write", e))?;
    // A leftover temp file keeps its old mode; make sure.
    set_mode(&tmp, 0o600).map_err(|e| io("restrict the permissions of", e))?;
    f.write_all(bytes).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("write", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io("write", e))
}

/// Sets a file's or folder's permission bits (no-op off Unix).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Makes every file below `dir` 0600 and every folder 0700 (the store, which holds Secrets).
pub fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    set_mode(dir, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            restrict_tree(&entry.path())?;
        } else if ft.is_file() {
            set_mode(&entry.path(), 0o600)?;
        }
    }
    Ok(())
}

/// A rustls verifier that accepts any server certificate but still checks handshake
/// signatures: AGC does not validate backend certificates, nor a scenario's `insecure` request.
#[derive(Debug)]
pub struct AcceptAnyCert(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_is_private_and_the_ca_survives_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let a = ApiPki::load_or_create(dir.path(), "127.0.0.1".parse().unwrap(), None).unwrap();
        let b = ApiPki::load_or_create(dir.path(), "127.0.0.1".parse().unwrap(), None).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem, "the CA is the same after a restart");
        assert_eq!(a.token, b.token, "the token is kept");
        assert_eq!(a.token.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [
                "ca.key",
                "ca.crt",
                "apiserver.key",
                "apiserver.crt",
                "token",
            ] {
                let mode = std::fs::metadata(dir.path().join("pki").join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let own =
            ApiPki::load_or_create(dir.path(), "127.0.0.1".parse().unwrap(), Some("t".into()))
                .unwrap();
        assert_eq!(own.token, "t");
    }
}

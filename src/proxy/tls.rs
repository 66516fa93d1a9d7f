//! TLS termination: certificate selection by SNI from the live table.
//!
//! One [`ServerConfig`] per listening socket; its resolver looks at the
//! *current* table at every handshake, so a rotated Secret (a new table
//! with different PEM) is served from the next handshake on, without
//! rebinding. Parsed keys are cached by a hash of their PEM text.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::sync::watch;

use crate::proxy::route;
use crate::routing::{CertificatePem, HostRank, ListenerProtocol, RoutingTable};

/// Errors turning a Secret's PEM into a usable certificate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to parse the certificate chain of {secret}: {reason}")]
    Cert { secret: String, reason: String },
    #[error("failed to parse the private key of {secret}: {reason}")]
    Key { secret: String, reason: String },
}

/// Parses a `kubernetes.io/tls` Secret's PEM into a rustls key.
pub fn certified_key(pem: &CertificatePem) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.cert_chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert {
            secret: pem.secret.clone(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            secret: pem.secret.clone(),
            reason: "no CERTIFICATE block in tls.crt".into(),
        });
    }
    let key = rustls_pemfile::private_key(&mut pem.key_pem.as_bytes())
        .map_err(|e| TlsError::Key {
            secret: pem.secret.clone(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| TlsError::Key {
            secret: pem.secret.clone(),
            reason: "no PRIVATE KEY block in tls.key".into(),
        })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Key {
            secret: pem.secret.clone(),
            reason: e.to_string(),
        })?;
    Ok(CertifiedKey::new(certs, signer))
}

/// Picks the certificate for one socket's handshakes.
#[derive(Debug)]
pub struct SniResolver {
    table: watch::Receiver<Arc<RoutingTable>>,
    /// The socket (gateway address, bound port).
    local: SocketAddr,
    port_offset: u16,
    cache: Mutex<HashMap<u64, Arc<CertifiedKey>>>,
}

impl SniResolver {
    pub fn new(
        table: watch::Receiver<Arc<RoutingTable>>,
        local: SocketAddr,
        port_offset: u16,
    ) -> Self {
        SniResolver {
            table,
            local,
            port_offset,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The certificate for `sni` under the current table.
    pub fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let table = self.table.borrow().clone();
        let gw = table
            .gateways
            .iter()
            .find(|g| std::net::IpAddr::V4(g.address) == self.local.ip())?;
        let spec_port = self.local.port().checked_sub(self.port_offset)?;
        let https = |l: &&crate::routing::ListenerRuntime| {
            l.port == spec_port && l.protocol == ListenerProtocol::Https && l.tls.is_some()
        };
        let listener = match sni {
            Some(host) => route::select_listener(&gw.listeners, spec_port, host)
                .filter(|l| https(l))
                .or_else(|| gw.listeners.iter().find(https)),
            None => gw.listeners.iter().find(https),
        }?;
        let certs = &listener.tls.as_ref()?.certificates;
        // A certificate naming the SNI host beats the listener default.
        let pem = sni
            .and_then(|host| {
                certs
                    .iter()
                    .filter_map(|c| {
                        let rank = route::hostname_rank(c.hostname.as_deref(), host)?;
                        (rank != HostRank::Any).then_some((rank, c))
                    })
                    .max_by_key(|(rank, _)| *rank)
                    .map(|(_, c)| c)
            })
            .or_else(|| certs.iter().find(|c| c.hostname.is_none()))
            .or_else(|| certs.first())?;
        self.load(pem)
    }

    fn load(&self, pem: &CertificatePem) -> Option<Arc<CertifiedKey>> {
        let id = BuildHasherDefault::<DefaultHasher>::default()
            .hash_one((&pem.cert_chain_pem, &pem.key_pem));
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = cache.get(&id) {
            return Some(k.clone());
        }
        match certified_key(pem) {
            Ok(k) => {
                if cache.len() >= 64 {
                    cache.clear();
                }
                let k = Arc::new(k);
                cache.insert(id, k.clone());
                Some(k)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot serve TLS with this certificate");
                None
            }
        }
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// The TLS config of one listening socket: certificates by SNI, ALPN `h2`
/// then `http/1.1`.
pub fn server_config(
    table: watch::Receiver<Arc<RoutingTable>>,
    local: SocketAddr,
    port_offset: u16,
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(table, local, port_offset)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(cfg)
}

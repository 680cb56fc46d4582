//! TLS settings as the collector's `tls:` blocks write them, turned into rustls configs (ring
//! provider, chosen explicitly so no other provider can be picked up at run time).

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;

/// A receiver's `tls:` block.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub cert_pem: Option<String>,
    pub key_pem: Option<String>,
    /// Require and verify client certificates signed by this CA (mutual TLS).
    pub client_ca_file: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

/// An exporter's `tls:` block.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsConfig {
    /// Plain text (gRPC exporters); an `http://` endpoint is plain text too.
    pub insecure: bool,
    pub insecure_skip_verify: bool,
    pub ca_file: Option<String>,
    pub ca_pem: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub server_name_override: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let rank = |text: Option<&str>, default: u8, key: &str| match text {
        None | Some("") => Ok(default),
        Some("1.2") => Ok(2),
        Some("1.3") => Ok(3),
        Some(other) => {
            Err(format!("{key}: unsupported TLS version \"{other}\": expected \"1.2\" or \"1.3\""))
        }
    };
    let low = rank(min, 2, "min_version")?;
    let high = rank(max, 3, "max_version")?;
    if low > high {
        return Err("min_version: is greater than max_version".to_string());
    }
    let mut chosen = Vec::new();
    if low <= 2 {
        chosen.push(&rustls::version::TLS12);
    }
    if high >= 3 {
        chosen.push(&rustls::version::TLS13);
    }
    Ok(chosen)
}

fn read_pem(file: Option<&str>, inline: Option<&str>, what: &str) -> Result<Vec<u8>, String> {
    match (file, inline) {
        (Some(_), Some(_)) => Err(format!("{what}: give either the file or the pem, not both")),
        (Some(path), None) => {
            std::fs::read(path).map_err(|error| format!("{what}: cannot read \"{path}\": {error}"))
        }
        (None, Some(pem)) => Ok(pem.as_bytes().to_vec()),
        (None, None) => Ok(Vec::new()),
    }
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut &pem[..]).collect();
    let certs = certs.map_err(|error| format!("{what}: invalid PEM: {error}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate found"));
    }
    Ok(certs)
}

fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|error| format!("{what}: invalid PEM: {error}"))?
        .ok_or_else(|| format!("{what}: no private key found"))
}

fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(pem, what)? {
        roots.add(cert).map_err(|error| format!("{what}: unusable CA certificate: {error}"))?;
    }
    Ok(roots)
}

impl ServerTlsConfig {
    /// Builds the rustls server config, offering `alpn` protocols (e.g. `h2` for gRPC).
    /// Errors name the key that is wrong, relative to the `tls` block.
    pub fn build(&self, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, String> {
        let cert_pem = read_pem(self.cert_file.as_deref(), self.cert_pem.as_deref(), "cert_file")?;
        let key_pem = read_pem(self.key_file.as_deref(), self.key_pem.as_deref(), "key_file")?;
        if cert_pem.is_empty() || key_pem.is_empty() {
            return Err("cert_file: a server certificate and key_file are both required".into());
        }
        let certs = certificates(&cert_pem, "cert_file")?;
        let key = private_key(&key_pem, "key_file")?;
        let versions = versions(self.min_version.as_deref(), self.max_version.as_deref())?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(|error| format!("min_version: {error}"))?;
        let builder = match &self.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let pem = read_pem(Some(path), None, "client_ca_file")?;
                let roots = Arc::new(root_store(&pem, "client_ca_file")?);
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                        .build()
                        .map_err(|error| format!("client_ca_file: {error}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs, key)
            .map_err(|error| format!("key_file: does not match the certificate: {error}"))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

impl ClientTlsConfig {
    /// The name the server's certificate is checked against instead of the endpoint's host:
    /// `server_name_override`, if set. Errors name the key, relative to the `tls` block.
    pub fn server_name(&self) -> Result<Option<ServerName<'static>>, String> {
        match self.server_name_override.as_deref() {
            None | Some("") => Ok(None),
            Some(name) => ServerName::try_from(name.to_string()).map(Some).map_err(|_| {
                format!(
                    "server_name_override: invalid server name \"{name}\": expected a DNS name or an IP address"
                )
            }),
        }
    }

    /// Builds the rustls client config: the given CA or the system's roots, and a client
    /// certificate when one is set.
    pub fn build(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, String> {
        if self.insecure_skip_verify {
            return Err(
                "insecure_skip_verify: not supported; give the server's CA in ca_file instead"
                    .into(),
            );
        }
        let ca_pem = read_pem(self.ca_file.as_deref(), self.ca_pem.as_deref(), "ca_file")?;
        let roots = if ca_pem.is_empty() {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            roots
        } else {
            root_store(&ca_pem, "ca_file")?
        };
        let versions = versions(self.min_version.as_deref(), self.max_version.as_deref())?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&versions)
            .map_err(|error| format!("min_version: {error}"))?
            .with_root_certificates(roots);
        let mut config = match (&self.cert_file, &self.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => {
                let certs = certificates(&read_pem(Some(cert), None, "cert_file")?, "cert_file")?;
                let key = private_key(&read_pem(Some(key), None, "key_file")?, "key_file")?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|error| format!("key_file: {error}"))?
            }
            _ => {
                return Err(
                    "cert_file: a client certificate needs both cert_file and key_file".into()
                );
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

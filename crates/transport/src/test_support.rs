//! TLS material for tests of the crates that serve or call over TLS (feature `test-support`,
//! turned on by their dev-dependencies only).

use std::io;

/// A CA and a certificate for `localhost` it signed, as PEM.
pub struct LocalhostCertificates {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// Makes a fresh CA and a `localhost` certificate signed by it.
pub fn localhost_certificates() -> Result<LocalhostCertificates, rcgen::Error> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&key, &issuer)?;
    Ok(LocalhostCertificates { ca: ca.pem(), cert: cert.pem(), key: key.serialize_pem() })
}

/// Writes `pem` as `name` in a directory of the system's temporary directory named after
/// `prefix` and this process, and returns the file's path as the collector's config writes it.
pub fn pem_file(prefix: &str, name: &str, pem: &str) -> io::Result<String> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, pem)?;
    Ok(path.to_string_lossy().into_owned())
}

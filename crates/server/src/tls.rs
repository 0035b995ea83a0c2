//! Transport security: TLS from PEM certificate and key files (rustls with
//! the ring provider), the rule that refuses plain HTTP beyond loopback,
//! and self-signed pairs for local use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// `[tls]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain (the server's certificate first).
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

/// The `Strict-Transport-Security` value sent on every response under TLS:
/// two years, subdomains included.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

impl TlsSettings {
    /// Both files, when TLS is configured; an error naming what is missing
    /// when only one is.
    pub fn files(&self) -> Result<Option<(&Path, &Path)>, String> {
        match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some(_), None) => Err("tls.cert_file is set but tls.key_file is not: give both".into()),
            (None, Some(_)) => Err("tls.key_file is set but tls.cert_file is not: give both".into()),
        }
    }
}

/// Refuses plain HTTP on an address reachable from other machines, unless
/// explicitly allowed (say, behind a proxy that terminates TLS).
pub fn check_plain_http(listen: SocketAddr, tls: bool, allow_insecure_http: bool) -> Result<(), String> {
    if tls || allow_insecure_http || listen.ip().is_loopback() {
        return Ok(());
    }
    Err(format!(
        "refusing to serve plain HTTP on {listen}, which is not a loopback address: configure [tls] \
         cert_file and key_file, or set allow_insecure_http = true (PROMPTVAULT_ALLOW_INSECURE_HTTP=true, \
         serve --allow-insecure-http) when a proxy terminates TLS"
    ))
}

/// The rustls configuration from the files, with the ring provider.
pub(crate) async fn load(cert: &Path, key: &Path) -> Result<axum_server::tls_rustls::RustlsConfig, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |p: &Path, what: &str| {
        std::fs::read(p).map_err(|e| format!("cannot read tls.{what} {}: {e}", p.display()))
    };
    let (cert_pem, key_pem) = (read(cert, "cert_file")?, read(key, "key_file")?);
    axum_server::tls_rustls::RustlsConfig::from_pem(cert_pem, key_pem).await.map_err(|e| {
        format!("tls: cannot use the certificate {} with the key {}: {e}", cert.display(), key.display())
    })
}

/// A self-signed certificate and its key, PEM-encoded.
#[derive(Debug)]
pub struct SelfSigned {
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM). Keep it secret.
    pub key_pem: zeroize::Zeroizing<String>,
}

/// Makes a self-signed certificate for `hosts` (DNS names or IP
/// addresses; `localhost`, 127.0.0.1 and ::1 when empty).
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, String> {
    let mut names: Vec<String> = hosts.to_vec();
    if names.is_empty() {
        names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    }
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot generate a key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(names).map_err(|e| format!("invalid host name: {e}"))?;
    params.distinguished_name.push(rcgen::DnType::CommonName, "promptvault (self-signed)");
    let cert = params.self_signed(&key).map_err(|e| format!("cannot sign the certificate: {e}"))?;
    Ok(SelfSigned { cert_pem: cert.pem(), key_pem: zeroize::Zeroizing::new(key.serialize_pem()) })
}

/// Writes `cert.pem` and `key.pem` (mode 0600) into `dir`, creating it;
/// returns their paths.
pub fn write_self_signed(dir: &Path, hosts: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let pair = self_signed(hosts)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &pair.cert_pem).map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    write_private(&key, pair.key_pem.as_bytes())?;
    Ok((cert, key))
}

/// Writes a file only its owner may read, whatever was there before.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let err = check_plain_http(any, false, false).unwrap_err();
        assert!(err.contains("0.0.0.0:8080") && err.contains("allow_insecure_http"), "{err}");
        assert!(!err.contains('\n'), "one line");
        assert!(check_plain_http(any, true, false).is_ok());
        assert!(check_plain_http(any, false, true).is_ok());
        assert!(check_plain_http("127.0.0.1:0".parse().unwrap(), false, false).is_ok());
        assert!(check_plain_http("[::1]:0".parse().unwrap(), false, false).is_ok());
        assert!(check_plain_http("[::]:0".parse().unwrap(), false, false).is_err());
        assert!(check_plain_http("192.168.1.10:443".parse().unwrap(), false, false).is_err());
    }

    #[test]
    fn both_files_or_neither() {
        assert!(TlsSettings::default().files().unwrap().is_none());
        let half = TlsSettings { cert_file: Some("c.pem".into()), key_file: None };
        assert!(half.files().unwrap_err().contains("tls.key_file"));
    }
}

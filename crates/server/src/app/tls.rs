//! TLS for RTMPS: the operator's certificate, or a self-signed one made on first run.

use std::{
    fs,
    io::BufReader,
    path::{Path, PathBuf},
    sync::Arc,
};

use parking_lot::RwLock;
use rustls::{
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
    ServerConfig,
};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing a PEM file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The IO error.
        source: std::io::Error,
    },
    /// The PEM files hold no usable certificate or key.
    #[error("{0}")]
    Pem(String),
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating the self-signed certificate failed.
    #[error("generating a self-signed certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Returns the cert and key paths to use: the given ones, or `data_dir/tls/{cert,key}.pem`,
/// generating a self-signed pair for `localhost`/`127.0.0.1` there if missing.
pub fn ensure_cert(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<(std::path::PathBuf, std::path::PathBuf, bool), TlsError> {
    if let (Some(c), Some(k)) = (cert, key) {
        return Ok((c.into(), k.into(), false));
    }
    let dir = data_dir.join("tls");
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    if c.exists() && k.exists() {
        return Ok((c, k, false));
    }
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let ck = rcgen::generate_simple_self_signed(names)?;
    fs::write(&c, ck.cert.pem()).map_err(io_err(&c))?;
    write_private(&k, ck.key_pair.serialize_pem().as_bytes()).map_err(io_err(&k))?;
    Ok((c, k, true))
}

/// Writes a private key readable by its owner only from the first byte (created 0600, not
/// written 0644 and narrowed afterwards, when another user could have opened it).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)?.write_all(bytes)
}

/// Reads a certificate chain and private key from PEM files into a rustls `CertifiedKey`.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(
        fs::File::open(cert).map_err(io_err(cert))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(io_err(cert))?;
    if certs.is_empty() {
        return Err(TlsError::Pem(format!(
            "{}: no certificate found in PEM file",
            cert.display()
        )));
    }
    let key_der = rustls_pemfile::private_key(&mut BufReader::new(
        fs::File::open(key).map_err(io_err(key))?,
    ))
    .map_err(io_err(key))?
    .ok_or_else(|| {
        TlsError::Pem(format!(
            "{}: no private key found in PEM file",
            key.display()
        ))
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)?;
    let ck = CertifiedKey::new(certs, signing);
    // A key that is not the certificate's fails every handshake (after a SIGHUP: every new
    // connection), so it is refused here and a reload keeps the old pair. A key type whose
    // public half rustls cannot tell is let through (the handshake will tell).
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        ck.keys_match()
    {
        return Err(TlsError::Pem(format!(
            "{}: this private key does not belong to the certificate in {} — give the key issued with that certificate",
            key.display(),
            cert.display()
        )));
    }
    Ok(Arc::new(ck))
}

/// The certificate in use, replaceable while the server runs (SIGHUP reloads the files);
/// connections already established keep theirs.
#[derive(Debug)]
pub struct ReloadableCert {
    current: RwLock<Arc<CertifiedKey>>,
    cert: PathBuf,
    key: PathBuf,
}

impl ReloadableCert {
    /// Loads the files once.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let ck = load_certified_key(cert, key)?;
        Ok(Arc::new(Self {
            current: RwLock::new(ck),
            cert: cert.into(),
            key: key.into(),
        }))
    }

    /// Re-reads the files; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = load_certified_key(&self.cert, &self.key)?;
        *self.current.write() = ck;
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// Builds the rustls server configuration (TLS 1.2 and 1.3 only) around a reloadable cert.
pub fn server_config(cert: Arc<ReloadableCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_and_loads() {
        let dir = std::env::temp_dir().join(format!("ferrocast-tls-{}", std::process::id()));
        let (c, k, made) = ensure_cert(&dir, None, None).unwrap();
        assert!(made);
        let before = fs::read(&c).unwrap();
        let (c2, _, made2) = ensure_cert(&dir, None, None).unwrap();
        assert!(!made2);
        assert_eq!(fs::read(&c2).unwrap(), before);
        let r = ReloadableCert::load(&c, &k).unwrap();
        server_config(r.clone()).unwrap();
        assert!(ReloadableCert::load(&k, &k)
            .unwrap_err()
            .to_string()
            .contains("no certificate"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&k).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the generated key is {mode:o}");
        }
        // Another pair's key with this certificate: refused, and a reload keeps the old pair.
        let other = dir.join("other");
        let (_, k2, _) = ensure_cert(&other, None, None).unwrap();
        let e = ReloadableCert::load(&c, &k2).unwrap_err().to_string();
        assert!(e.contains("does not belong to the certificate"), "{e}");
        fs::copy(&k2, &k).unwrap();
        assert!(r
            .reload()
            .unwrap_err()
            .to_string()
            .contains("does not belong"));
        // A broken file on reload keeps the old certificate.
        fs::write(&c, "garbage").unwrap();
        assert!(r.reload().is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}

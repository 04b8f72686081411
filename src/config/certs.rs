//! Reading the listener's certificate pair from its PEM files (or, at startup only, generating a
//! self-signed one for `localhost` when neither file exists), part of loading a config: startup
//! exits 78 on a [`TlsError`], a reload keeps the pair in force.
//!
//! Does file I/O ([`load_or_generate`], [`load_on_reload`], [`load_pair`]); serving the key is
//! `cert_store`'s job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::model::{ClientTlsFiles, TlsFiles};

/// Why a certificate pair could not be used. Startup exits 78 on it; a reload keeps the old pair.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// No PEM certificate in the file, or a malformed one.
    #[error("no valid PEM certificate: {0}")]
    Cert(String),
    /// No PEM private key in the file, or a malformed one.
    #[error("no valid PEM private key: {0}")]
    Key(String),
    /// The key does not match the certificate, or rustls cannot use it.
    #[error("certificate and key do not match or are unusable: {0}")]
    Mismatch(String),
    /// Generating the self-signed certificate failed.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    /// On a reload, neither file exists (docs/contract.md §8: the self-signed certificate is made only at
    /// startup, so a rotation that deleted the pair never swaps one in).
    #[error(
        "the certificate and key files are both missing; a self-signed certificate is generated only at startup, so the certificate in force keeps serving"
    )]
    Missing,
}

/// Load the pair named in `files`. When *neither* file exists, generate a self-signed certificate
/// for `localhost` and return `true` with it (the caller logs a warning). One missing file of two
/// is an error, never a silent fallback.
pub fn load_or_generate(
    files: &TlsFiles,
) -> Result<(Arc<CertifiedKey>, bool), (PathBuf, TlsError)> {
    if !files.cert.exists() && !files.key.exists() {
        let key = self_signed(&["localhost".to_owned()]).map_err(|e| (files.cert.clone(), e))?;
        return Ok((key, true));
    }
    load_pair(&files.cert, &files.key).map(|k| (k, false))
}

/// On a reload: load the pair named in `files`; nothing is ever generated. When neither file
/// exists, `Ok(None)` if the certificate in force is the one generated at startup
/// (`self_signed_in_force`: it keeps serving, nothing changed), else [`TlsError::Missing`]: the
/// files a real certificate came from were deleted, which is an invalid version.
pub fn load_on_reload(
    files: &TlsFiles,
    self_signed_in_force: bool,
) -> Result<Option<Arc<CertifiedKey>>, (PathBuf, TlsError)> {
    if !files.cert.exists() && !files.key.exists() {
        return match self_signed_in_force {
            true => Ok(None),
            false => Err((files.cert.clone(), TlsError::Missing)),
        };
    }
    load_pair(&files.cert, &files.key).map(Some)
}

/// Load and check a PEM certificate chain and private key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, (PathBuf, TlsError)> {
    let cert_pem = std::fs::read(cert).map_err(|e| (cert.to_path_buf(), TlsError::Read(e)))?;
    let key_pem = std::fs::read(key).map_err(|e| (key.to_path_buf(), TlsError::Read(e)))?;
    certified_key(&cert_pem, &key_pem).map_err(|e| {
        let path = if matches!(e, TlsError::Key(_)) {
            key
        } else {
            cert
        };
        (path.to_path_buf(), e)
    })
}

/// Build a [`CertifiedKey`] from PEM bytes, checking that key and leaf match.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Cert(
            "the file holds no CERTIFICATE block".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key(e.to_string()))?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| TlsError::Mismatch(e.to_string()))
}

/// The TLS client configuration for an `https://` upstream (`upstream.tls`): trust the PEM
/// bundle `ca` (when given) instead of the webpki roots, and present `cert`/`key` (when given).
/// No ALPN is set: the forwarder sets what each of its clients offers.
pub fn upstream_client_config(
    files: Option<&ClientTlsFiles>,
) -> Result<Arc<rustls::ClientConfig>, (PathBuf, TlsError)> {
    let mut roots = rustls::RootCertStore::empty();
    match files.and_then(|f| f.ca.as_ref()) {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(ca) => {
            let pem = std::fs::read(ca).map_err(|e| (ca.clone(), TlsError::Read(e)))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| (ca.clone(), TlsError::Cert(e.to_string())))?;
            if certs.is_empty() {
                let e = TlsError::Cert("the file holds no CERTIFICATE block".to_owned());
                return Err((ca.clone(), e));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| (ca.clone(), TlsError::Cert(e.to_string())))?;
            }
        }
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| (PathBuf::new(), TlsError::Mismatch(e.to_string())))?
        .with_root_certificates(roots);
    let config = match files.and_then(|f| f.cert.as_ref().zip(f.key.as_ref())) {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let ck = load_pair(cert, key)?;
            let der = PrivateKeyDer::from_pem_slice(
                &std::fs::read(key).map_err(|e| (key.clone(), TlsError::Read(e)))?,
            )
            .map_err(|e| (key.clone(), TlsError::Key(e.to_string())))?;
            builder
                .with_client_auth_cert(ck.cert.clone(), der)
                .map_err(|e| (cert.clone(), TlsError::Mismatch(e.to_string())))?
        }
    };
    Ok(Arc::new(config))
}

/// A self-signed certificate for `names`, generated in memory.
pub fn self_signed(names: &[String]) -> Result<Arc<CertifiedKey>, TlsError> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    certified_key(
        ck.cert.pem().as_bytes(),
        ck.signing_key.serialize_pem().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::TlsVersion;

    fn install() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }

    #[test]
    fn certified_key_mismatched_pair_is_rejected() {
        install();
        let a = rcgen::generate_simple_self_signed(vec!["a".to_owned()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".to_owned()]).unwrap();
        let err = certified_key(
            a.cert.pem().as_bytes(),
            b.signing_key.serialize_pem().as_bytes(),
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::Mismatch(_)), "{err:?}");
    }

    #[test]
    fn upstream_ca_missing_empty_or_garbage_is_an_error_at_its_path() {
        install();
        let dir = tempfile::tempdir().unwrap();
        let files = |ca: &str| ClientTlsFiles {
            ca: Some(dir.path().join(ca)),
            cert: None,
            key: None,
        };
        std::fs::write(dir.path().join("empty.pem"), "").unwrap();
        std::fs::write(
            dir.path().join("junk.pem"),
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let (path, e) = upstream_client_config(Some(&files("absent.pem"))).unwrap_err();
        assert!(
            path.ends_with("absent.pem") && matches!(e, TlsError::Read(_)),
            "{e:?}"
        );
        for name in ["empty.pem", "junk.pem"] {
            let (path, e) = upstream_client_config(Some(&files(name))).unwrap_err();
            assert!(
                path.ends_with(name) && matches!(e, TlsError::Cert(_)),
                "{name}: {e:?}"
            );
        }
        let ck = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ck.cert.pem()).unwrap();
        let config = upstream_client_config(Some(&files("ca.pem"))).unwrap();
        assert!(
            config.alpn_protocols.is_empty(),
            "the forwarder sets ALPN per client"
        );
        assert!(upstream_client_config(None).is_ok(), "the webpki roots");
    }

    #[test]
    fn certified_key_garbage_is_rejected() {
        install();
        let err = certified_key(b"not pem", b"not pem").unwrap_err();
        assert!(matches!(err, TlsError::Cert(_)), "{err:?}");
    }

    #[test]
    fn load_or_generate_with_one_file_missing_is_an_error() {
        install();
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), ck.cert.pem()).unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            min_version: TlsVersion::V12,
        };
        let (path, err) = load_or_generate(&files).unwrap_err();
        assert_eq!(path, files.key);
        assert!(matches!(err, TlsError::Read(_)));
    }

    #[test]
    fn load_on_reload_with_both_files_gone_is_missing_unless_self_signed_in_force() {
        install();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            min_version: TlsVersion::V12,
        };
        let (path, err) = load_on_reload(&files, false).unwrap_err();
        assert_eq!(path, files.cert);
        assert!(matches!(err, TlsError::Missing), "{err:?}");
        assert!(load_on_reload(&files, true).unwrap().is_none());
        // One file of two is an error whatever is in force; both present are loaded.
        let ck = rcgen::generate_simple_self_signed(vec!["x".to_owned()]).unwrap();
        std::fs::write(&files.cert, ck.cert.pem()).unwrap();
        let (path, err) = load_on_reload(&files, true).unwrap_err();
        assert_eq!(path, files.key);
        assert!(matches!(err, TlsError::Read(_)), "{err:?}");
        std::fs::write(&files.key, ck.signing_key.serialize_pem()).unwrap();
        assert!(load_on_reload(&files, false).unwrap().is_some());
    }

    #[test]
    fn load_or_generate_with_no_files_generates() {
        install();
        let dir = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            min_version: TlsVersion::V12,
        };
        let (_, generated) = load_or_generate(&files).unwrap();
        assert!(generated);
    }
}

//! TLS (rustls) on top of any listener's streams: the certificate chain and key from PEM
//! files, optional client certificates verified against a CA file, and reloading the files
//! without dropping open connections.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use crate::config::{ClientCertificates, TlsConfig};

/// A TLS acceptor whose configuration can be reloaded.
#[derive(Debug)]
pub(crate) struct Tls {
    files: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
}

/// A TLS stream and what its handshake established.
#[derive(Debug)]
pub(crate) struct Accepted<S> {
    pub(crate) stream: TlsStream<S>,
    /// The verified client certificate's subject common name, if the client sent one.
    pub(crate) client_cn: Option<String>,
}

impl Tls {
    /// Loads the files named in `files`; every error names the file.
    pub(crate) fn load(files: &TlsConfig) -> io::Result<Tls> {
        let config = server_config(files)?;
        Ok(Tls {
            files: files.clone(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Re-reads the certificate, key and CA files; on error the current ones stay in use.
    /// Open connections are not affected either way.
    pub(crate) fn reload(&self) -> io::Result<()> {
        let config = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    /// The certificate file (for logs).
    pub(crate) fn certificate_file(&self) -> &Path {
        &self.files.certificate
    }

    /// Runs the TLS handshake on `stream` (the caller bounds it in time).
    pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
    ) -> io::Result<Accepted<S>> {
        let config = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stream = tokio_rustls::TlsAcceptor::from(config)
            .accept(stream)
            .await?;
        let client_cn = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| common_name(cert.as_ref()));
        Ok(Accepted { stream, client_cn })
    }
}

fn named(path: &Path, what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} {}: {e}", path.display()),
    )
}

fn certificates(path: &PathBuf) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| named(path, "cannot read certificates from", e))?
        .collect::<Result<_, _>>()
        .map_err(|e| named(path, "cannot read certificates from", e))?;
    if certs.is_empty() {
        return Err(named(path, "no PEM certificate in", "the file is empty"));
    }
    Ok(certs)
}

fn server_config(files: &TlsConfig) -> io::Result<ServerConfig> {
    let chain = certificates(&files.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| named(&files.key, "cannot read the private key from", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| named(ca, "not a CA certificate in", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match files.client_certificates {
                ClientCertificates::Required => verifier,
                ClientCertificates::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| named(ca, "cannot verify clients with", e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    // Also checks that the key matches the certificate.
    builder.with_single_cert(chain, key).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "certificate {} and key {} do not go together: {e}",
                files.certificate.display(),
                files.key.display()
            ),
        )
    })
}

/// The subject common name of a DER certificate, read with a small DER walk (the verifier
/// already checked the certificate; this only finds the CN attribute, OID 2.5.4.3).
fn common_name(der: &[u8]) -> Option<String> {
    const CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    let subject = subject(der)?;
    let at = subject.windows(CN.len()).position(|w| w == CN)? + CN.len();
    let (tag, value, _) = tlv(subject.get(at..)?)?;
    // UTF8String, PrintableString, IA5String, T61String, BMPString is not supported.
    if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
        return None;
    }
    String::from_utf8(value.to_vec()).ok()
}

/// The DER-encoded subject Name of a certificate.
fn subject(der: &[u8]) -> Option<&[u8]> {
    let (_, cert, _) = tlv(der)?; // Certificate SEQUENCE
    let (_, tbs, _) = tlv(cert)?; // TBSCertificate SEQUENCE
    let mut rest = tbs;
    // [0] version (optional), serial, signature, issuer, validity, subject
    let (tag, _, r) = tlv(rest)?;
    rest = if tag == 0xa0 { tlv(r)?.2 } else { r };
    for _ in 0..3 {
        rest = tlv(rest)?.2; // signature algorithm, issuer, validity
    }
    let (_, subject, _) = tlv(rest)?;
    Some(subject)
}

/// One DER tag-length-value: (tag, value, what follows).
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = b
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |acc, x| (acc << 8) | usize::from(*x));
        (len, 2 + n)
    };
    let value = b.get(head..head.checked_add(len)?)?;
    Some((tag, value, &b[head + len..]))
}

/// PEM files for tests: a self-signed `localhost` certificate, its key, and another key.
#[cfg(test)]
pub(crate) fn test_files(dir: &Path) -> [PathBuf; 3] {
    let key = rcgen::KeyPair::generate().unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let files = [
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
        ("other.pem", other.serialize_pem()),
    ];
    files.map(|(name, pem)| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "device-17");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("device-17"));
        assert_eq!(
            common_name(b"\x30\x03\x02\x01"),
            None,
            "truncated: no panic"
        );
        assert_eq!(common_name(&[]), None);
    }

    #[test]
    fn bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("wamp-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let [cert_file, key_file, other_file] = test_files(&dir);
        let files = |c: &Path, k: &Path| TlsConfig {
            certificate: c.to_owned(),
            key: k.to_owned(),
            client_ca: None,
            client_certificates: ClientCertificates::Optional,
        };
        assert!(Tls::load(&files(&cert_file, &key_file)).is_ok());
        let missing = dir.join("missing.pem");
        let e = Tls::load(&files(&missing, &key_file)).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let e = Tls::load(&files(&cert_file, &other_file)).unwrap_err();
        assert!(e.to_string().contains("do not go together"), "{e}");
        let e = Tls::load(&files(&cert_file, &cert_file)).unwrap_err();
        assert!(e.to_string().contains("cert.pem"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}

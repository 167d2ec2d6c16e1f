//! TLS for `wss://` and `rss://` (alias `tcps://`): rustls with the ring provider, on the TCP
//! stream before the WebSocket or RawSocket handshake.
//!
//! Trust: Mozilla's roots (the `webpki-roots` crate, the `webpki-roots` feature, on by
//! default) plus the CA certificates given to [`ClientBuilder::tls_root_certificates_pem`].
//! The server name checked is the URL's host (a DNS name, or an IP address matched against
//! the certificate's IP SANs). A client certificate
//! ([`ClientBuilder::tls_client_certificate`]) is sent when the router asks for one, and
//! offers the `tls` authmethod. Everything is given as PEM, so no rustls type is in this
//! crate's API.

use std::fmt;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::auth::Method;
use crate::builder::ClientBuilder;
use crate::error::{ConnectError, TransportError};

/// The TLS options of a [`ClientBuilder`].
#[derive(Clone)]
pub(crate) struct TlsOptions {
    /// PEM texts, each with one or more CA certificates to trust.
    roots: Vec<Arc<[u8]>>,
    /// Whether Mozilla's roots (webpki-roots) are trusted too.
    default_roots: bool,
    /// The client certificate chain and its private key, as PEM.
    client: Option<ClientCertificate>,
}

#[derive(Clone)]
struct ClientCertificate {
    chain_pem: Arc<[u8]>,
    key_pem: Arc<[u8]>,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            roots: Vec::new(),
            default_roots: true,
            client: None,
        }
    }
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("added_roots", &self.roots.len())
            .field("default_roots", &self.default_roots)
            .field(
                "client_certificate",
                &self.client.as_ref().map(|_| "<key redacted>"),
            )
            .finish()
    }
}

impl ClientBuilder {
    /// Also trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks, e.g. a
    /// private CA's file) for `wss://` and `rss://` URLs; may be called again to add more.
    /// Mozilla's roots stay trusted unless [`ClientBuilder::tls_default_roots`] turns them
    /// off. A PEM without a usable certificate fails [`ClientBuilder::connect`] with
    /// [`ConnectError::TlsConfig`].
    pub fn tls_root_certificates_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.roots.push(Arc::from(pem.as_ref()));
        self
    }

    /// Whether Mozilla's root certificates (shipped by the `webpki-roots` crate, this crate's
    /// default `webpki-roots` feature) are trusted (default `true`). Turn them off to trust
    /// only the CAs given to [`ClientBuilder::tls_root_certificates_pem`]. Without the
    /// feature there are no default roots.
    pub fn tls_default_roots(mut self, enabled: bool) -> Self {
        self.tls.default_roots = enabled;
        self
    }

    /// Sends this client certificate when a `wss://` or `rss://` router asks for one (mutual
    /// TLS): `chain_pem` holds the certificate, then any intermediates; `key_pem` its private
    /// key (PKCS#8, PKCS#1 or SEC1 PEM). Also offers the `tls` authmethod, at this place in
    /// the order of methods: a router that maps the certificate's subject to a user logs the
    /// client in as that user without a CHALLENGE ([`ClientBuilder::authid`] is optional and,
    /// if given, must be that user). Unreadable PEM fails [`ClientBuilder::connect`] with
    /// [`ConnectError::TlsConfig`]. `Debug` never shows the key.
    pub fn tls_client_certificate(
        mut self,
        chain_pem: impl AsRef<[u8]>,
        key_pem: impl AsRef<[u8]>,
    ) -> Self {
        self.tls.client = Some(ClientCertificate {
            chain_pem: Arc::from(chain_pem.as_ref()),
            key_pem: Arc::from(key_pem.as_ref()),
        });
        self.auth.offer(Method::Tls);
        self
    }
}

impl TlsOptions {
    /// The rustls configuration: the trusted roots and the client certificate, if any.
    fn client_config(&self) -> Result<ClientConfig, ConnectError> {
        let invalid = |m: String| ConnectError::TlsConfig(m);
        let mut roots = RootCertStore::empty();
        #[cfg(feature = "webpki-roots")]
        if self.default_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for (i, pem) in self.roots.iter().enumerate() {
            let what = format!("the PEM given to tls_root_certificates_pem (#{})", i + 1);
            let certs = certificates(pem, &what).map_err(invalid)?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| invalid(format!("a certificate in {what}: {e}")))?;
            }
        }
        if roots.is_empty() {
            return Err(invalid(
                "no trusted root certificates (the default roots are off, and none were \
                 given to tls_root_certificates_pem)"
                    .into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(e.to_string()))?
            .with_root_certificates(roots);
        let Some(client) = &self.client else {
            return Ok(builder.with_no_client_auth());
        };
        let what = "the certificate given to tls_client_certificate";
        let chain = certificates(&client.chain_pem, what).map_err(invalid)?;
        let key = PrivateKeyDer::from_pem_slice(&client.key_pem).map_err(|e| {
            invalid(format!(
                "the key given to tls_client_certificate is not a PEM private key: {e}"
            ))
        })?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| invalid(format!("{what}: {e}")))
    }
}

/// The certificates in a PEM text (at least one).
fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} does not read as PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no CERTIFICATE"));
    }
    Ok(certs)
}

/// The name the router's certificate must be for: the URL's host, without IPv6 brackets.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("`{host}` is neither a DNS name nor an IP address usable for TLS"))
}

/// Runs the client side of the TLS handshake on `stream` with the router `host`.
pub(crate) async fn handshake<S>(
    stream: S,
    name: ServerName<'static>,
    host: &str,
    options: &TlsOptions,
) -> Result<TlsStream<S>, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = TlsConnector::from(Arc::new(options.client_config()?));
    connector.connect(name, stream).await.map_err(|e| {
        // rustls errors arrive wrapped in io::Error; their text says what was wrong
        // ("invalid peer certificate: UnknownIssuer", "received fatal alert: ...").
        let message = format!("TLS handshake with {host} failed: {e}");
        ConnectError::Transport(TransportError::io_with_message(&e, message))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_url_hosts() {
        assert!(matches!(
            server_name("localhost"),
            Ok(ServerName::DnsName(_))
        ));
        assert!(matches!(
            server_name("127.0.0.1"),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(server_name("[::1]"), Ok(ServerName::IpAddress(_))));
        assert!(server_name("bad host").is_err());
    }

    #[test]
    fn bad_pem_is_a_configuration_error_and_keys_are_redacted() {
        let config = |o: TlsOptions| match o.client_config() {
            Err(ConnectError::TlsConfig(m)) => m,
            other => panic!("{:?}", other.map(|_| "a config")),
        };
        let mut o = TlsOptions::default();
        o.roots.push(Arc::from(&b"not pem"[..]));
        assert!(config(o).contains("holds no CERTIFICATE"));
        let o = TlsOptions {
            default_roots: false,
            ..TlsOptions::default()
        };
        assert!(config(o).contains("no trusted root certificates"));
        let o = TlsOptions {
            client: Some(ClientCertificate {
                chain_pem: Arc::from(&b""[..]),
                key_pem: Arc::from(&b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n"[..]),
            }),
            ..TlsOptions::default()
        };
        assert!(!format!("{o:?}").contains("c2VjcmV0"));
        assert!(config(o).contains("tls_client_certificate holds no CERTIFICATE"));
    }
}

//! TLS to `https://` shadows: rustls (ring provider), verified against the system roots plus
//! `--shadow-ca`, or not verified at all with `--insecure`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// What a TLS connection to the shadow needs.
#[derive(Clone, Debug)]
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

/// Accepts any certificate (`--insecure`), still checking that handshake signatures are
/// made by the certificate's key.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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

/// TLS for an `https://` shadow as the command line gives it (`--shadow-ca`, `--insecure`),
/// not yet loaded: [`config`] reads the files.
#[derive(Clone, Debug)]
pub struct TlsSpec {
    /// The server name to verify: the shadow URL's host.
    pub host: String,
    /// `--shadow-ca`: a PEM file of extra roots.
    pub ca: Option<PathBuf>,
    /// `--insecure`: the certificate is not verified.
    pub insecure: bool,
}

/// Builds the client configuration for `host`.
pub fn config(host: &str, extra_ca: Option<&Path>, insecure: bool) -> anyhow::Result<Tls> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS setup")?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // Unreadable system certificates are skipped: `--shadow-ca` may be all that is needed.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = extra_ca {
            let certs = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("--shadow-ca {}", path.display()))?
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("--shadow-ca {}: not PEM certificates", path.display()))?;
            if certs.is_empty() {
                return Err(anyhow!(
                    "--shadow-ca {}: no certificate in it",
                    path.display()
                ));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .with_context(|| format!("--shadow-ca {}", path.display()))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| anyhow!("{host:?} is not a valid TLS server name"))?;
    Ok(Tls {
        config: Arc::new(config),
        name,
    })
}

//! How to reach a broker: TCP or TLS (rustls with the ring provider), user name and password.
//! Shared by delivery, the MQTT sources and `firebreak watch`. Secrets are read here, kept in
//! [`Secret`], and never formatted.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{BrokerConfig, TlsFiles};

/// The largest packet a link sends or accepts.
pub const MAX_PACKET: usize = 64 * 1024;

/// The MQTT client id of a gateway's connection to one of its `[[brokers]]` entries:
/// `{gateway}-{broker}-deliver`, `{broker}` being the entry's `name`. Unique per gateway and
/// entry, so that two entries reaching one broker cluster, or two gateways, never take over
/// each other's session (a broker closes the older connection of a client id).
pub fn deliver_client_id(gateway: &str, broker: &str) -> String {
    format!("{gateway}-{broker}-deliver")
}

/// A secret (a password): its `Debug` and `Display` say `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: String) -> Secret {
        Secret(s)
    }

    /// The secret itself, to hand to the MQTT client and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a broker's link could not be prepared. Names the broker and the file or variable;
/// never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker {broker}: {what}: {problem}")]
pub struct LinkError {
    /// The broker's name.
    pub broker: String,
    /// The setting or file (`password_file /etc/…`, `ca_file /etc/…`).
    pub what: String,
    /// What is wrong.
    pub problem: String,
}

/// A broker's connection settings, secrets read.
#[derive(Clone)]
pub struct Link {
    /// The broker's settings.
    pub broker: BrokerConfig,
    password: Option<Secret>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("broker", &self.broker)
            .field("password", &self.password)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Link {
    /// Reads the password and the TLS files the broker's settings name.
    pub fn prepare(broker: &BrokerConfig) -> Result<Link, LinkError> {
        let err = |what: String, problem: String| LinkError {
            broker: broker.name.clone(),
            what,
            problem,
        };
        let password = match &broker.password {
            None => None,
            Some(source) => Some(Secret(
                source
                    .read()
                    .map_err(|(what, problem)| err(what, problem))?,
            )),
        };
        let tls = match &broker.tls {
            None => None,
            Some(files) => {
                Some(client_config(files).map_err(|(what, problem)| err(what, problem))?)
            }
        };
        Ok(Link {
            broker: broker.clone(),
            password,
            tls,
        })
    }

    /// MQTT options for a new connection with `client_id`.
    pub fn options(&self, client_id: &str, keep_alive: Duration) -> MqttOptions {
        let mut o = MqttOptions::new(client_id, self.broker.host.clone(), self.broker.port);
        o.set_keep_alive(keep_alive);
        o.set_clean_session(true);
        o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some(user) = &self.broker.username {
            o.set_credentials(
                user.clone(),
                self.password
                    .as_ref()
                    .map(|p| p.expose().to_string())
                    .unwrap_or_default(),
            );
        }
        if let Some(tls) = &self.tls {
            o.set_transport(Transport::Tls(TlsConfiguration::Rustls(tls.clone())));
        }
        o
    }
}

/// A rustls client configuration with the ring provider: the CA file as the only root, and
/// the client certificate when configured.
fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, (String, String)> {
    let ca_what = format!("ca_file {}", files.ca_file.display());
    let ca = std::fs::read(&files.ca_file)
        .map_err(|e| (ca_what.clone(), format!("cannot read: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(&ca) {
        let cert = cert.map_err(|e| (ca_what.clone(), format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| (ca_what.clone(), format!("not a usable CA certificate: {e}")))?;
        count += 1;
    }
    if count == 0 {
        return Err((ca_what, "holds no PEM certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("tls".to_string(), e.to_string()))?
        .with_root_certificates(roots);
    let config = match &files.client {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let cert_what = format!("client_cert {}", cert_file.display());
            let pem = std::fs::read(cert_file)
                .map_err(|e| (cert_what.clone(), format!("cannot read: {e}")))?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (cert_what.clone(), format!("not PEM certificates: {e}")))?;
            if chain.is_empty() {
                return Err((cert_what, "holds no PEM certificate".into()));
            }
            let key_what = format!("client_key {}", key_file.display());
            crate::secrets::check_secret_file(key_file).map_err(|p| (key_what.clone(), p))?;
            let pem = std::fs::read(key_file)
                .map_err(|e| (key_what.clone(), format!("cannot read: {e}")))?;
            // The parser's error names a PEM problem, never the key's bytes.
            let key = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| (key_what.clone(), format!("not a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| (key_what, format!("does not fit client_cert: {e}")))?
        }
    };
    Ok(Arc::new(config))
}

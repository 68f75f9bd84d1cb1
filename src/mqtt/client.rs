//! [`MqttConfig`] → rumqttc options, including our own rustls client config.
//!
//! rumqttc is built without default features (those pull aws-lc-rs, and two
//! rustls providers in one binary panic at run time). We build the TLS
//! `ClientConfig` ourselves with ring, the provider ureq already uses, and
//! hand it over as `TlsConfiguration::Rustls`. Files are read here, at
//! connect time, with errors that name them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::mqtt::{MqttConfig, MqttTransport};

/// Seconds between MQTT pings; also how fast the broker notices a dead box (×1.5).
const KEEP_ALIVE: Duration = Duration::from_secs(30);
/// Largest packet we accept: retained messages under our own topics (ours
/// are ≈1 KB; a bigger one put there by someone else would make every
/// connection fail, so the limit is generous).
const MAX_INCOMING_BYTES: usize = 1024 * 1024;
/// Largest packet we send: the aggregate is ≈1 KB per stream.
const MAX_OUTGOING_BYTES: usize = 8 * 1024 * 1024;
/// TCP + TLS + CONNACK must finish within this.
const CONNECT_TIMEOUT_SECS: u64 = 10;

impl MqttConfig {
    /// The broker as shown in logs: `tls://host:port` (never credentials).
    pub fn broker_label(&self) -> String {
        match self.transport {
            MqttTransport::Ws | MqttTransport::Wss => format!(
                "{}://{}:{}{}",
                self.transport.as_str(),
                self.host,
                self.port,
                self.ws_path
            ),
            _ => format!("{}://{}:{}", self.transport.as_str(), self.host, self.port),
        }
    }
}

/// QoS from the config's number (validated to be 0..=2).
pub fn qos(n: u8) -> QoS {
    match n {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The client id: configured, or `streampulse-<device>-<random>`.
pub fn client_id(cfg: &MqttConfig) -> String {
    cfg.client_id
        .clone()
        .unwrap_or_else(|| format!("streampulse-{}-{:04x}", cfg.device, fastrand::u16(..)))
}

/// Builds the options for one connection: transport, credentials, and the
/// LWT (`offline`, retained) on the availability topic.
///
/// # Errors
/// Unreadable or invalid TLS files.
pub fn options(cfg: &MqttConfig) -> Result<MqttOptions> {
    let id = client_id(cfg);
    let mut o = match cfg.transport {
        MqttTransport::Tcp | MqttTransport::Tls => MqttOptions::new(id, &cfg.host, cfg.port),
        MqttTransport::Ws | MqttTransport::Wss => {
            let scheme = if cfg.transport == MqttTransport::Ws {
                "ws"
            } else {
                "wss"
            };
            // rumqttc takes host and port from this URL for WebSockets.
            let host = if cfg.host.contains(':') {
                format!("[{}]", cfg.host)
            } else {
                cfg.host.clone()
            };
            let url = format!("{scheme}://{host}:{}{}", cfg.port, cfg.ws_path);
            MqttOptions::new(id, url, cfg.port)
        }
    };
    o.set_keep_alive(KEEP_ALIVE);
    // rumqttc's default limit is 10 KB each way; the aggregate of a few
    // dozen streams is larger, and a packet over the limit drops the connection.
    o.set_max_packet_size(MAX_INCOMING_BYTES, MAX_OUTGOING_BYTES);
    o.set_clean_session(true);
    o.set_last_will(LastWill::new(
        cfg.availability_topic(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(c) = &cfg.credentials {
        o.set_credentials(c.username.clone(), c.password.clone());
    }
    match cfg.transport {
        MqttTransport::Tcp => {}
        MqttTransport::Ws => {
            o.set_transport(Transport::Ws);
        }
        MqttTransport::Tls => {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(tls_config(cfg)?),
            )));
        }
        MqttTransport::Wss => {
            o.set_transport(Transport::wss_with_config(TlsConfiguration::Rustls(
                Arc::new(tls_config(cfg)?),
            )));
        }
    }
    Ok(o)
}

/// Network options: the connect deadline (rumqttc's default is 5 s, short
/// for a TLS handshake with a Pi Zero on Wi-Fi).
pub fn network_options() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_connection_timeout(CONNECT_TIMEOUT_SECS);
    n
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client config for `tls`/`wss`, on ring.
///
/// # Errors
/// A CA file without certificates, unreadable files, a key that does not fit.
pub fn tls_config(cfg: &MqttConfig) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if !cfg.tls.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match &cfg.tls.ca_file {
            Some(path) => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("reading mqtt.ca_file {}", path.display()))?
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("parsing mqtt.ca_file {}", path.display()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    bail!(
                        "mqtt.ca_file {} holds no usable PEM certificate",
                        path.display()
                    );
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    match (&cfg.tls.client_cert_file, &cfg.tls.client_key_file) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .with_context(|| format!("reading mqtt.client_cert_file {}", cert.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("parsing mqtt.client_cert_file {}", cert.display()))?;
            if chain.is_empty() {
                bail!(
                    "mqtt.client_cert_file {} holds no PEM certificate",
                    cert.display()
                );
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading mqtt.client_key_file {}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("mqtt.client_cert_file and client_key_file do not fit together")
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// `tls_verify: false` (v2.2 `tls_insecure: true`): any certificate and name
/// is accepted, but handshake signatures are still checked so the session
/// keys are really the peer's.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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

/// A connection error in words a user can act on. Never contains the password
/// (rumqttc's errors do not carry the options).
pub fn describe(e: &rumqttc::ConnectionError) -> String {
    use rumqttc::{ConnectReturnCode as C, ConnectionError as E};
    match e {
        E::ConnectionRefused(C::BadUserNamePassword | C::NotAuthorized) => {
            "the broker refused the login (not authorized): check mqtt.username and mqtt.password"
                .into()
        }
        E::ConnectionRefused(C::BadClientId) => {
            "the broker refused the client id: check mqtt.client_id".into()
        }
        E::ConnectionRefused(code) => format!("the broker refused the connection ({code:?})"),
        E::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused (is the broker running and listening on this port?)".into()
        }
        E::NetworkTimeout => "no answer from the broker in time".into(),
        E::Tls(t) => format!("TLS: {t}"),
        other => other.to_string(),
    }
}

//! A throwaway PKI for TLS tests: a CA, server certificates for
//! `localhost`/`127.0.0.1` written as PEM files, client certificates (good
//! ones, and the expired and X.509 v1 kinds a server must refuse), and
//! rustls client configurations that trust the CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SigningKey as _,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub(crate) struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A client certificate and its key.
pub(crate) struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Pki {
    /// A CA named `name`, its certificate written to `<dir>/<name>-ca.pem`.
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        Self {
            dir: dir.to_path_buf(),
            ca,
        }
    }

    pub(crate) fn ca_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-ca.pem"))
    }

    /// A server certificate for `localhost` and `127.0.0.1`, with common
    /// name `cn`, written to `<stem>.pem` / `<stem>.key`. Returns the paths
    /// and the certificate's DER.
    pub(crate) fn server(&self, stem: &str, cn: &str) -> (PathBuf, PathBuf, Vec<u8>) {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{stem}.pem")),
            self.dir.join(format!("{stem}.key")),
        );
        // Key first: a reload that sees the new certificate sees its key.
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        std::fs::write(&cert_path, cert.pem()).unwrap();
        (cert_path, key_path, cert.der().to_vec())
    }

    /// A client certificate with subject `O=Acme, CN=<cn>`.
    pub(crate) fn client(&self, cn: &str) -> Identity {
        self.client_with(cn, |_| {})
    }

    /// A client certificate carrying `uris` as URI SANs (SPIFFE ids).
    pub(crate) fn spiffe_client(&self, cn: &str, uris: &[&str]) -> Identity {
        self.client_with(cn, |p| {
            for u in uris {
                p.subject_alt_names.push(rcgen::SanType::URI(
                    rcgen::string::Ia5String::try_from(*u).unwrap(),
                ));
            }
        })
    }

    /// A client certificate that expired in 2021.
    pub(crate) fn expired_client(&self, cn: &str) -> Identity {
        self.client_with(cn, |p| {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        })
    }

    /// An X.509 v1 client certificate — no version field, no extensions —
    /// as `openssl x509 -req` makes without `-extfile`. rcgen writes only
    /// v3, so its certificate is taken apart and signed again without the
    /// two.
    pub(crate) fn v1_client(&self, cn: &str) -> Identity {
        let v3 = self.client(cn);
        // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
        let cert = der_elements(der_content(v3.chain[0].as_ref()));
        // TBSCertificate ::= SEQUENCE { [0] version, serialNumber, signature,
        //   issuer, validity, subject, subjectPublicKeyInfo, [3] extensions } (RFC 5280 §4.1)
        let tbs: Vec<u8> = der_elements(der_content(cert[0]))
            .into_iter()
            .filter(|e| e[0] != 0xa0 && e[0] != 0xa3)
            .flatten()
            .copied()
            .collect();
        let tbs = der_tlv(0x30, &tbs);
        let mut signature = vec![0u8]; // BIT STRING: no unused bits
        signature.extend(self.ca.key().sign(&tbs).unwrap());
        let body = [tbs, cert[1].to_vec(), der_tlv(0x03, &signature)].concat();
        Identity {
            chain: vec![CertificateDer::from(der_tlv(0x30, &body))],
            key: v3.key,
        }
    }

    fn client_with(&self, cn: &str, adjust: impl FnOnce(&mut CertificateParams)) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Identity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// A client that trusts this CA, offers `alpn`, and presents `identity`.
    pub(crate) fn client_config(
        &self,
        identity: Option<Identity>,
        alpn: &[&[u8]],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            // Not `with_client_auth_cert`, which parses the certificate:
            // some tests present one rustls refuses to parse (v1).
            Some(id) => {
                let key = provider.key_provider.load_private_key(id.key).unwrap();
                builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
                    CertifiedKey::new(id.chain, key),
                )))
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A TLS connection to `addr` as `localhost`.
pub(crate) async fn connect(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// A DER element's header length and content length.
fn der_header(tlv: &[u8]) -> (usize, usize) {
    match tlv[1] {
        n if n < 0x80 => (2, usize::from(n)),
        n => {
            let k = usize::from(n & 0x7f);
            let len = tlv[2..2 + k]
                .iter()
                .fold(0, |acc, b| acc << 8 | usize::from(*b));
            (2 + k, len)
        }
    }
}

fn der_content(tlv: &[u8]) -> &[u8] {
    let (header, len) = der_header(tlv);
    &tlv[header..header + len]
}

/// The elements (tag, length and content each) one after another in `content`.
fn der_elements(mut content: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let (header, len) = der_header(content);
        let (element, rest) = content.split_at(header + len);
        out.push(element);
        content = rest;
    }
    out
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    match len {
        0..0x80 => out.push(len as u8),
        0x80..0x100 => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(content);
    out
}

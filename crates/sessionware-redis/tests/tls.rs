//! `rediss://`: the store against a TLS-only `redis-server` the test starts, with a
//! certificate from a CA the test makes.

mod common;

use std::sync::Arc;

use common::servers;
use sessionware_core::testing;
use sessionware_redis::fred::types::config::{Config, TlsConnector};
use sessionware_redis::{ConnectError, RedisStore};

struct Pki {
    ca: rcgen::Certificate,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca,
    }
}

/// A rustls client config that trusts only the test CA, as an application with a private CA
/// would build it.
fn trusting(ca: &rcgen::Certificate) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_speaks_tls_and_passes_the_suite() {
    if !servers::available("tls") {
        return;
    }
    let pki = pki();
    let redis = servers::start_tls(&pki.cert_pem, &pki.key_pem);
    let url = format!("rediss://127.0.0.1:{}", redis.port);

    // The URL alone trusts the system's roots, which do not include the test CA: the TLS
    // handshake is attempted and refuses the certificate.
    let err = RedisStore::builder(&url)
        .connect_timeout(sessionware_core::time::Duration::seconds(3))
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Connect(_)), "{err:?}");
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "a certificate error: {err:?}"
    );

    // The application's own config, trusting its CA: a working store.
    let mut config = Config::from_url(&url).unwrap();
    config.tls = Some(trusting(&pki.ca).into());
    let store = RedisStore::from_config(config)
        .prefix(common::unique_prefix("tls"))
        .connect()
        .await
        .expect("connect over TLS");
    testing::run(&store, |id| common::corrupt(&store, id)).await;
}

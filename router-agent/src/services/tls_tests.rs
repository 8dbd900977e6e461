//! https checks against a local TLS server with a certificate made by `openssl` here.

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Semaphore,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        ServerConfig,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
};

use super::*;
use crate::services::{
    check::{Check, run_check},
    config::HttpCheckConfig,
    http::HttpCheck,
};

/// A self-signed certificate for 127.0.0.1 (cert, key) in a fresh directory.
fn certificate(tag: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("svc-tls-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=health", "-addext"])
        .arg("subjectAltName=IP:127.0.0.1")
        // An end-entity certificate (openssl's default is a CA, which webpki refuses to
        // take as a server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    (cert, key)
}

/// An https server answering `response` to every request.
async fn serve(cert: &PathBuf, key: &PathBuf, response: &'static [u8]) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    port
}

async fn check(port: u16, ca_file: Option<PathBuf>, insecure: bool) -> Result<(), CheckError> {
    let config = HttpCheckConfig {
        url: format!("https://127.0.0.1:{port}/health"),
        status: 200,
        body: Some("ok".into()),
        ca_file,
        insecure,
    };
    let check = Check::Http(HttpCheck::from_config(&config).unwrap());
    run_check(&check, Duration::from_secs(2), &Semaphore::new(1))
        .await
        .outcome
}

#[tokio::test]
async fn https_checks_verify_the_server() {
    let (cert, key) = certificate("ok");
    let port = serve(
        &cert,
        &key,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    )
    .await;
    assert_eq!(check(port, Some(cert.clone()), false).await, Ok(()));
    assert_eq!(check(port, None, true).await, Ok(()), "insecure takes it");
    // Self-signed: not under the Mozilla roots.
    let untrusted = check(port, None, false).await;
    assert!(
        matches!(&untrusted, Err(CheckError::Tls(why)) if why.contains("UnknownIssuer")),
        "{untrusted:?}"
    );
    // Another certificate as the CA: refused as well.
    let (other, _) = certificate("other");
    assert!(matches!(
        check(port, Some(other.clone()), false).await,
        Err(CheckError::Tls(_))
    ));
    // A plain-text server behind an https URL: a TLS error, not a hang.
    let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_port = plain.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut stream, _) = plain.accept().await.unwrap();
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    assert!(matches!(
        check(plain_port, None, true).await,
        Err(CheckError::Tls(_))
    ));
    for file in [cert, other] {
        let _ = std::fs::remove_dir_all(file.parent().unwrap());
    }
}

#[test]
fn ca_file_errors_name_the_file() {
    let e = Tls::new(Some(std::path::Path::new("/nonexistent.pem")), false).unwrap_err();
    assert!(e.contains("/nonexistent.pem"), "{e}");
    let dir = std::env::temp_dir().join(format!("svc-tls-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = Tls::new(Some(&empty), false).unwrap_err();
    assert!(e.contains("no usable certificate"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

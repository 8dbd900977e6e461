use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Semaphore,
};

use super::*;
use crate::services::check::{Check, run_check};

#[test]
fn urls() {
    let url = Url::parse("http://127.0.0.1:8080/health?x=1#frag").unwrap();
    assert_eq!(
        url,
        Url {
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/health?x=1".into(),
            tls: false,
        }
    );
    let url = Url::parse("HTTP://[2001:db8::1]/").unwrap();
    assert_eq!((url.host.as_str(), url.port), ("2001:db8::1", 80));
    assert_eq!(url.host_header(), "[2001:db8::1]");
    assert_eq!(Url::parse("http://lb.example").unwrap().path, "/");
    for (bad, why) in [
        ("ftp://x/", "only http:// and https://"),
        ("http:///health", "a host is required"),
        ("http://user:pw@x/", "no user:password@"),
        ("http://x:0/", "not a port"),
        ("http://x:99999/", "not a port"),
        ("http://x/a b", "spaces"),
        ("http://[::1/", "unclosed"),
    ] {
        let e = Url::parse(bad).unwrap_err();
        assert!(e.contains(why), "{bad}: {e}");
    }
    if cfg!(feature = "https") {
        let url = Url::parse("https://lb.example/h").unwrap();
        assert_eq!(
            (url.port, url.tls, url.host_header()),
            (443, true, "lb.example".into())
        );
    } else {
        let e = Url::parse("https://x/").unwrap_err();
        assert!(e.contains("built without https checks"), "{e}");
    }
}

fn parsed(text: &str, eof: bool) -> Result<Option<Response>, String> {
    parse_response(text.as_bytes(), eof)
}

#[test]
fn responses() {
    let ok = parsed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", false).unwrap();
    assert_eq!(ok.unwrap().body, b"ok");
    assert_eq!(
        parsed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", false),
        Ok(None)
    );
    assert!(parsed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", true).is_err());
    assert_eq!(parsed("HTTP/1.0 200 OK\r\n", false), Ok(None));
    let close = parsed("HTTP/1.0 503 Busy\r\nServer: x\r\n\r\nbusy", true)
        .unwrap()
        .unwrap();
    assert_eq!((close.status, close.body.as_slice()), (503, &b"busy"[..]));
    let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                   3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    assert_eq!(parsed(chunked, false).unwrap().unwrap().body, b"abcde");
    assert_eq!(parsed(&chunked[..chunked.len() - 7], false), Ok(None));
    let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
    assert_eq!(parsed(interim, false).unwrap().unwrap().status, 204);
    for garbage in [
        "SSH-2.0-OpenSSH\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    ] {
        assert!(parsed(garbage, true).is_err(), "{garbage:?}");
    }
    assert!(parse_response(b"", true).is_err());
    // Headers that never end within the cap: refused, not waited on.
    let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
    endless.resize(MAX_RESPONSE, b'a');
    assert!(parse_response(&endless, false).is_err());
    // A body over the cap: what arrived is what is searched.
    let mut big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nok".to_vec();
    big.resize(MAX_RESPONSE, b'x');
    assert!(
        parse_response(&big, false)
            .unwrap()
            .unwrap()
            .body
            .starts_with(b"ok")
    );
}

/// A server answering every connection with `response` (after reading the request).
async fn serve(response: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                if !response.is_empty() {
                    let _ = stream.write_all(response).await;
                    let _ = stream.shutdown().await;
                } else {
                    // Hung: holds the connection and says nothing.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            });
        }
    });
    format!("http://{address}/health")
}

async fn check(url: String, status: u16, body: Option<&str>, timeout: Duration) -> CheckResult {
    let config = HttpCheckConfig {
        url,
        status,
        body: body.map(str::to_owned),
        ca_file: None,
        insecure: false,
    };
    let check = Check::Http(HttpCheck::from_config(&config).unwrap());
    run_check(&check, timeout, &Semaphore::new(1)).await
}

use crate::services::check::CheckResult;

#[tokio::test]
async fn probes_against_local_servers() {
    let url = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nall ok\n").await;
    let timeout = Duration::from_millis(300);
    assert_eq!(
        check(url.clone(), 200, Some("ok"), timeout).await.outcome,
        Ok(())
    );
    assert_eq!(
        check(url.clone(), 204, None, timeout).await.outcome,
        Err(CheckError::HttpStatus {
            got: 200,
            want: 204
        })
    );
    assert_eq!(
        check(url, 200, Some("ready"), timeout).await.outcome,
        Err(CheckError::BodyMismatch("ready".into()))
    );
    let chunked =
        serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfine\r\n0\r\n\r\n").await;
    assert_eq!(
        check(chunked, 200, Some("fine"), timeout).await.outcome,
        Ok(())
    );
    let garbage = serve(b"\x16\x03\x01\x02\x00garbage").await;
    let result = check(garbage, 200, None, timeout).await;
    assert!(
        matches!(result.outcome, Err(CheckError::HttpGarbage(_))),
        "{result:?}"
    );
    assert!(result.latency < timeout, "garbage is refused at once");
}

#[tokio::test]
async fn hung_server_times_out_on_time() {
    let url = serve(b"").await;
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let result = check(url, 200, None, timeout).await;
    assert_eq!(result.outcome, Err(CheckError::Timeout));
    let took = started.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(50),
        "{took:?}"
    );
}

#[tokio::test]
async fn closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let result = check(url, 200, None, Duration::from_millis(300)).await;
    assert_eq!(result.outcome, Err(CheckError::Refused));
}

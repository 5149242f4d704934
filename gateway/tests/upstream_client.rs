//! The upstream S3 client against moto (`moto_server`, found beside the
//! python of `OBJSEAL_S3_PYTHON`, or at `OBJSEAL_MOTO_SERVER`) and against
//! small fake servers on 127.0.0.1 (refused connections, a stalled server,
//! canned answers for the retries).
//!
//! Without moto the moto tests print why and pass, unless
//! `OBJSEAL_REQUIRE_S3_CLIENTS=1`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue};
use objseal_gateway::upstream::client::{
    ByteStream, CODE_TIMEOUT, CODE_TOO_LARGE, CODE_TRANSPORT, Client, Credentials, ListParams,
    UpstreamConfig, UpstreamError,
};

const MIB: usize = 1024 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config(endpoint: &str) -> UpstreamConfig {
    UpstreamConfig {
        endpoint: endpoint.parse().unwrap(),
        region: "us-east-1".into(),
        credentials: Credentials {
            access_key_id: "test".into(),
            secret_access_key: zeroize::Zeroizing::new("test-secret".into()),
            session_token: None,
        },
        ca_file: None,
        connect_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(10),
    }
}

// ---------------------------------------------------------------- moto

/// A running moto_server, killed on drop.
struct Moto {
    child: Mutex<Child>,
    port: u16,
    /// Certificate and key of an https server.
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn moto_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OBJSEAL_MOTO_SERVER") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Some(p);
        }
    }
    if let Some(py) = std::env::var_os("OBJSEAL_S3_PYTHON") {
        let p = PathBuf::from(py).parent()?.join("moto_server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts moto (`tls`: with a certificate, returned as PEM) and waits until
/// it answers; `None` (after a message) when it is not installed.
fn start_moto(tls: Option<(&str, &str)>) -> Option<Moto> {
    let Some(bin) = moto_binary() else {
        let msg = "moto_server not found (set OBJSEAL_S3_PYTHON to a venv's python with \
                   moto[server], or OBJSEAL_MOTO_SERVER)";
        if std::env::var("OBJSEAL_REQUIRE_S3_CLIENTS").as_deref() == Ok("1") {
            panic!("{msg}, and OBJSEAL_REQUIRE_S3_CLIENTS=1");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    };
    let port = free_port();
    let mut cmd = Command::new(&bin);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut dir = None;
    if let Some((cert, key)) = tls {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("cert.pem"), cert).unwrap();
        std::fs::write(d.path().join("key.pem"), key).unwrap();
        cmd.arg("-s")
            .arg("-c")
            .arg(d.path().join("cert.pem"))
            .arg("-k")
            .arg(d.path().join("key.pem"));
        dir = Some(d);
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin:?}: {e}"));
    let moto = Moto {
        child: Mutex::new(child),
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(moto);
        }
        if let Some(status) = moto.child.lock().unwrap().try_wait().unwrap() {
            panic!("moto_server exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The plain-http moto shared by the tests running at the same time.
fn moto() -> Option<Arc<Moto>> {
    static SHARED: Mutex<Weak<Moto>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(m) = shared.upgrade() {
        return Some(m);
    }
    let m = Arc::new(start_moto(None)?);
    *shared = Arc::downgrade(&m);
    Some(m)
}

fn moto_client(m: &Moto) -> Client {
    Client::new(config(&format!("http://127.0.0.1:{}", m.port))).unwrap()
}

/// `data` as a stream of pieces of `piece` bytes.
fn pieces(data: &Bytes, piece: usize) -> ByteStream {
    let chunks: Vec<io::Result<Bytes>> = data
        .chunks(piece)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures::stream::iter(chunks))
}

async fn read_all(mut body: ByteStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(piece) = body.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

fn pattern(n: usize, seed: u8) -> Bytes {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn hv<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

const ODD_KEYS: &[&str] = &[
    "odd/with space.txt",
    "odd/unicodé/ключ/鍵.bin",
    "odd/plus+sign",
    "odd/percent%20literal%",
    "odd/question?mark=1&x",
    "odd/hash#frag",
    "odd/double//slash",
    "odd/tilde~star*paren(1)'quote\"",
];

// ---------------------------------------------------------------- moto tests

#[test]
fn moto_bucket_lifecycle() {
    let Some(m) = moto() else { return };
    runtime().block_on(async {
        let c = moto_client(&m);
        c.create_bucket("lifecycle").await.unwrap();
        let buckets = c.list_buckets().await.unwrap();
        assert!(
            buckets
                .iter()
                .any(|(n, d)| n == "lifecycle" && !d.is_empty())
        );
        c.head_bucket("lifecycle").await.unwrap();
        let e = c.head_bucket("no-such-bucket").await.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "NoSuchBucket"), "{e}");
        let e = c
            .list_objects_v2("no-such-bucket", &ListParams::default())
            .await
            .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "NoSuchBucket"), "{e}");
        c.delete_bucket("lifecycle").await.unwrap();
        let e = c.head_bucket("lifecycle").await.unwrap_err();
        assert_eq!(e.code, "NoSuchBucket");
        let e = c.delete_bucket("lifecycle").await.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "NoSuchBucket"), "{e}");
    });
}

#[test]
fn moto_put_get_ranges_head_errors() {
    let Some(m) = moto() else { return };
    runtime().block_on(async {
        let c = moto_client(&m);
        c.create_bucket("objects").await.unwrap();
        let data = pattern(3 * MIB + 12345, 7);
        let h = headers(&[
            ("content-type", "application/x-test"),
            ("x-amz-meta-color", "blue"),
            ("x-amz-meta-sealed", "v1"),
            ("cache-control", "no-cache"),
        ]);
        let put = c
            .put_object(
                "objects",
                "dir/big.bin",
                h,
                pieces(&data, 200_000),
                data.len() as u64,
            )
            .await
            .unwrap();
        let etag = hv(&put, "etag").to_owned();
        assert!(etag.starts_with('"'), "{etag}");

        // Whole.
        let r = c
            .get_object("objects", "dir/big.bin", None, HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(hv(&r.headers, "content-length"), data.len().to_string());
        assert_eq!(hv(&r.headers, "x-amz-meta-color"), "blue");
        assert_eq!(read_all(r.body).await.unwrap(), data[..]);

        // Ranges.
        let r = c
            .get_object("objects", "dir/big.bin", Some((10, 99)), HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(r.status, 206);
        assert_eq!(read_all(r.body).await.unwrap(), data[10..100]);
        let from = data.len() as u64 - 5000;
        let r = c
            .get_object(
                "objects",
                "dir/big.bin",
                Some((from, u64::MAX)),
                HeaderMap::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 206);
        assert_eq!(read_all(r.body).await.unwrap(), data[from as usize..]);

        // Tail.
        let (status, th, tail) = c.get_tail("objects", "dir/big.bin", 100).await.unwrap();
        assert_eq!(status, 206);
        assert!(hv(&th, "content-range").starts_with("bytes "), "{th:?}");
        assert_eq!(tail, data[data.len() - 100..]);

        // get_small: refused over the limit, else whole.
        let e = c
            .get_small("objects", "dir/big.bin", MIB)
            .await
            .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (0, CODE_TOO_LARGE), "{e}");
        let (gh, all) = c
            .get_small("objects", "dir/big.bin", 4 * MIB)
            .await
            .unwrap();
        assert_eq!(all, data);
        assert_eq!(hv(&gh, "etag"), etag);

        // If-Match / If-None-Match.
        let e = c
            .get_object(
                "objects",
                "dir/big.bin",
                None,
                headers(&[("if-none-match", &etag)]),
            )
            .await
            .err()
            .unwrap();
        assert_eq!((e.status, e.code.as_str()), (304, "NotModified"), "{e}");
        let e = c
            .get_object(
                "objects",
                "dir/big.bin",
                None,
                headers(&[("if-match", "\"0000\"")]),
            )
            .await
            .err()
            .unwrap();
        assert_eq!(
            (e.status, e.code.as_str()),
            (412, "PreconditionFailed"),
            "{e}"
        );

        // Head.
        let hh = c.head_object("objects", "dir/big.bin").await.unwrap();
        assert_eq!(hv(&hh, "content-length"), data.len().to_string());
        assert_eq!(hv(&hh, "content-type"), "application/x-test");
        assert_eq!(hv(&hh, "x-amz-meta-color"), "blue");
        assert_eq!(hv(&hh, "x-amz-meta-sealed"), "v1");
        assert_eq!(hv(&hh, "etag"), etag);

        // Missing key and bucket.
        let e = c.head_object("objects", "nope").await.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "NoSuchKey"), "{e}");
        let e = c
            .get_object("objects", "nope", None, HeaderMap::new())
            .await
            .err()
            .unwrap();
        assert_eq!((e.status, e.code.as_str()), (404, "NoSuchKey"), "{e}");
        let e = c.get_small("no-such-bucket", "k", 10).await.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "NoSuchBucket"), "{e}");

        // A body short or long fails the request; nothing is stored.
        let short = pattern(1000, 1);
        let e = c
            .put_object(
                "objects",
                "short",
                HeaderMap::new(),
                pieces(&short, 100),
                2000,
            )
            .await
            .unwrap_err();
        assert_eq!(e.status, 0, "{e}");
        let e = c
            .put_object(
                "objects",
                "long",
                HeaderMap::new(),
                pieces(&short, 100),
                500,
            )
            .await
            .unwrap_err();
        assert_eq!(e.status, 0, "{e}");
        assert_eq!(
            c.head_object("objects", "long").await.unwrap_err().code,
            "NoSuchKey"
        );

        // Small and empty puts.
        c.put_small("objects", "empty", HeaderMap::new(), Bytes::new())
            .await
            .unwrap();
        let (_, b) = c.get_small("objects", "empty", 10).await.unwrap();
        assert!(b.is_empty());

        // Delete, twice.
        c.delete_object("objects", "dir/big.bin").await.unwrap();
        c.delete_object("objects", "dir/big.bin").await.unwrap();
        assert_eq!(
            c.head_object("objects", "dir/big.bin")
                .await
                .unwrap_err()
                .code,
            "NoSuchKey"
        );
    });
}

#[test]
fn moto_odd_keys_round_trip() {
    let Some(m) = moto() else { return };
    runtime().block_on(async {
        let c = moto_client(&m);
        c.create_bucket("oddkeys").await.unwrap();
        for (i, key) in ODD_KEYS.iter().enumerate() {
            let body = Bytes::from(format!("body of {key}"));
            let h = headers(&[("x-amz-meta-i", &i.to_string())]);
            c.put_small("oddkeys", key, h, body.clone()).await.unwrap();
            let hh = c.head_object("oddkeys", key).await.unwrap();
            assert_eq!(hv(&hh, "x-amz-meta-i"), i.to_string(), "{key}");
            let (_, got) = c.get_small("oddkeys", key, 1000).await.unwrap();
            assert_eq!(got, body, "{key}");
            // Streamed too.
            c.put_object(
                "oddkeys",
                key,
                HeaderMap::new(),
                pieces(&body, 3),
                body.len() as u64,
            )
            .await
            .unwrap();
            let r = c
                .get_object("oddkeys", key, Some((0, 3)), HeaderMap::new())
                .await
                .unwrap();
            assert_eq!(read_all(r.body).await.unwrap(), body[..4], "{key}");
        }
        let page = c
            .list_objects_v2(
                "oddkeys",
                &ListParams {
                    prefix: "odd/",
                    max_keys: 1000,
                    ..ListParams::default()
                },
            )
            .await
            .unwrap();
        let mut want: Vec<&str> = ODD_KEYS.to_vec();
        want.sort();
        let got: Vec<&str> = page.contents.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(got, want);
        for key in ODD_KEYS {
            c.delete_object("oddkeys", key).await.unwrap();
            assert_eq!(
                c.head_object("oddkeys", key).await.unwrap_err().code,
                "NoSuchKey"
            );
        }
    });
}

#[test]
fn moto_copy_replaces_metadata_in_place() {
    let Some(m) = moto() else { return };
    runtime().block_on(async {
        let c = moto_client(&m);
        c.create_bucket("copies").await.unwrap();
        for key in ["plain", "odd/with space+plus%"] {
            let body = pattern(5000, 3);
            let h = headers(&[("x-amz-meta-state", "old"), ("content-type", "text/plain")]);
            c.put_small("copies", key, h, body.clone()).await.unwrap();
            let etag = c
                .copy_object(
                    "copies",
                    key,
                    "copies",
                    key,
                    headers(&[
                        ("x-amz-metadata-directive", "REPLACE"),
                        ("x-amz-meta-state", "new"),
                        ("content-type", "application/octet-stream"),
                    ]),
                )
                .await
                .unwrap();
            assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
            let hh = c.head_object("copies", key).await.unwrap();
            assert_eq!(hv(&hh, "x-amz-meta-state"), "new", "{key}");
            assert_eq!(hv(&hh, "content-type"), "application/octet-stream");
            let (_, got) = c.get_small("copies", key, 10_000).await.unwrap();
            assert_eq!(got, body);
            // To another key.
            c.copy_object("copies", key, "copies", "copy-target", HeaderMap::new())
                .await
                .unwrap();
            let (_, got) = c.get_small("copies", "copy-target", 10_000).await.unwrap();
            assert_eq!(got, body);
        }
        let e = c
            .copy_object("copies", "missing", "copies", "x", HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (404, "NoSuchKey"), "{e}");
    });
}

#[test]
fn moto_list_v2_pages_with_delimiter() {
    let Some(m) = moto() else { return };
    runtime().block_on(async {
        let c = moto_client(&m);
        c.create_bucket("listing").await.unwrap();
        let mut keys: Vec<String> = vec![
            "p/a".into(),
            "p/b c".into(),
            "p/d+e".into(),
            "p/f%g".into(),
            "p/ü".into(),
            "p/sub/1".into(),
            "p/sub/2".into(),
            "p/sub two/x".into(),
            "p/zz".into(),
            "other".into(),
        ];
        for k in &keys {
            c.put_small("listing", k, HeaderMap::new(), Bytes::from_static(b"x"))
                .await
                .unwrap();
        }
        // Without delimiter: pages of 2 give every key under p/ once.
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = c
                .list_objects_v2(
                    "listing",
                    &ListParams {
                        prefix: "p/",
                        continuation_token: token.as_deref(),
                        max_keys: 2,
                        ..ListParams::default()
                    },
                )
                .await
                .unwrap();
            pages += 1;
            assert!(page.contents.len() <= 2);
            for l in &page.contents {
                assert_eq!(l.size, 1);
                assert!(l.etag.starts_with('"'));
                assert!(!l.last_modified.is_empty());
                seen.push(l.key.clone());
            }
            if !page.is_truncated {
                break;
            }
            token = page.next_continuation_token;
            assert!(pages < 20);
        }
        keys.retain(|k| k.starts_with("p/"));
        keys.sort();
        assert_eq!(seen, keys);
        assert_eq!(pages, 5);

        // With a delimiter: objects and common prefixes, paged by 2.
        let mut objects = Vec::new();
        let mut prefixes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = c
                .list_objects_v2(
                    "listing",
                    &ListParams {
                        prefix: "p/",
                        delimiter: Some("/"),
                        continuation_token: token.as_deref(),
                        max_keys: 2,
                        ..ListParams::default()
                    },
                )
                .await
                .unwrap();
            assert!(page.contents.len() + page.common_prefixes.len() <= 2);
            objects.extend(page.contents.into_iter().map(|l| l.key));
            prefixes.extend(page.common_prefixes);
            if !page.is_truncated {
                break;
            }
            token = page.next_continuation_token;
        }
        assert_eq!(objects, ["p/a", "p/b c", "p/d+e", "p/f%g", "p/zz", "p/ü"]);
        assert_eq!(prefixes, ["p/sub two/", "p/sub/"]);

        // StartAfter, an odd prefix.
        let page = c
            .list_objects_v2(
                "listing",
                &ListParams {
                    prefix: "p/",
                    start_after: Some("p/d+e"),
                    max_keys: 1000,
                    ..ListParams::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.contents[0].key, "p/f%g");
        let page = c
            .list_objects_v2(
                "listing",
                &ListParams {
                    prefix: "p/sub two/",
                    max_keys: 10,
                    ..ListParams::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page.contents.len(), 1);
        assert_eq!(page.contents[0].key, "p/sub two/x");
    });
}

#[test]
fn moto_multipart() {
    let Some(m) = moto() else { return };
    runtime().block_on(async {
        let c = moto_client(&m);
        c.create_bucket("multi").await.unwrap();
        let key = "mp/big object+1";
        let id = c
            .create_multipart_upload(
                "multi",
                key,
                headers(&[
                    ("x-amz-meta-kind", "multi"),
                    ("content-type", "application/x-mp"),
                ]),
            )
            .await
            .unwrap();
        let p1 = pattern(5 * MIB, 11);
        let p2 = pattern(1234, 12);
        let e1 = c
            .upload_part(
                "multi",
                key,
                &id,
                1,
                pieces(&p1, 256 * 1024),
                p1.len() as u64,
            )
            .await
            .unwrap();
        let e2 = c
            .upload_part("multi", key, &id, 2, pieces(&p2, 100), p2.len() as u64)
            .await
            .unwrap();
        assert!(e1.starts_with('"') && e2.starts_with('"'));
        let parts = c.list_parts("multi", key, &id).await.unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].number, parts[0].size), (1, p1.len() as u64));
        assert_eq!((parts[1].number, parts[1].size), (2, p2.len() as u64));
        assert_eq!(parts[0].etag, e1);
        assert_eq!(parts[1].etag, e2);

        // A second upload, to abort.
        let id2 = c
            .create_multipart_upload("multi", "mp/other", HeaderMap::new())
            .await
            .unwrap();
        let ups = c.list_multipart_uploads("multi", "mp/").await.unwrap();
        let mut listed: Vec<(String, String)> = ups
            .iter()
            .map(|u| (u.key.clone(), u.upload_id.clone()))
            .collect();
        listed.sort();
        assert_eq!(
            listed,
            [
                (key.to_owned(), id.clone()),
                ("mp/other".to_owned(), id2.clone())
            ]
        );
        assert!(ups.iter().all(|u| !u.initiated.is_empty()));
        c.abort_multipart_upload("multi", "mp/other", &id2)
            .await
            .unwrap();

        let etag = c
            .complete_multipart_upload("multi", key, &id, &[(1, e1), (2, e2.clone())])
            .await
            .unwrap();
        assert!(etag.ends_with("-2\""), "{etag}");
        assert!(
            c.list_multipart_uploads("multi", "mp/")
                .await
                .unwrap()
                .is_empty()
        );
        let hh = c.head_object("multi", key).await.unwrap();
        assert_eq!(hv(&hh, "x-amz-meta-kind"), "multi");
        assert_eq!(hv(&hh, "content-length"), (p1.len() + p2.len()).to_string());
        let r = c
            .get_object(
                "multi",
                key,
                Some((p1.len() as u64 - 10, u64::MAX)),
                HeaderMap::new(),
            )
            .await
            .unwrap();
        let got = read_all(r.body).await.unwrap();
        assert_eq!(got[..10], p1[p1.len() - 10..]);
        assert_eq!(got[10..], p2[..]);

        // Completing an aborted upload fails.
        let e = c
            .complete_multipart_upload("multi", "mp/other", &id2, &[(1, e2)])
            .await
            .unwrap_err();
        // moto answers 500 without a body here; S3 says NoSuchUpload.
        assert!(e.code == "NoSuchUpload" || e.status >= 400, "{e}");
    });
}

#[test]
fn moto_https_with_ca_file() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert_pem = cert.cert.pem();
    let Some(m) = start_moto(Some((&cert_pem, &cert.signing_key.serialize_pem()))) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert_pem).unwrap();
    runtime().block_on(async {
        let endpoint = format!("https://127.0.0.1:{}", m.port);
        let mut cfg = config(&endpoint);
        cfg.ca_file = Some(ca.clone());
        let c = Client::new(cfg).unwrap();
        c.create_bucket("tls").await.unwrap();
        let data = pattern(300_000, 5);
        c.put_object(
            "tls",
            "k",
            HeaderMap::new(),
            pieces(&data, 65536),
            data.len() as u64,
        )
        .await
        .unwrap();
        let r = c
            .get_object("tls", "k", None, HeaderMap::new())
            .await
            .unwrap();
        assert_eq!(read_all(r.body).await.unwrap(), data);

        // Not trusted without the CA file.
        let c = Client::new(config(&endpoint)).unwrap();
        let e = c.head_bucket("tls").await.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (0, CODE_TRANSPORT), "{e}");
        assert!(e.message.contains(&endpoint), "{e}");
        assert!(e.message.to_lowercase().contains("certificate"), "{e}");
    });
}

// ---------------------------------------------------------------- no moto

#[test]
fn connect_refused_is_status_0_quickly() {
    let port = free_port(); // nothing listens there now
    runtime().block_on(async {
        let endpoint = format!("http://127.0.0.1:{port}");
        let c = Client::new(config(&endpoint)).unwrap();
        let t = Instant::now();
        let e = c.head_object("b", "private/name").await.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (0, CODE_TRANSPORT), "{e}");
        assert!(e.message.contains(&endpoint), "{e}");
        // Messages reach the log: never a key.
        assert!(!e.message.contains("private"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let e = c
            .put_object(
                "b",
                "k",
                HeaderMap::new(),
                pieces(&Bytes::from_static(b"abc"), 1),
                3,
            )
            .await
            .unwrap_err();
        assert_eq!(e.status, 0, "{e}");
    });
}

/// A server that accepts connections, reads nothing more than it must and
/// never answers (or answers `prefix` first and then stalls).
fn stalled_server(prefix: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            if !prefix.is_empty() {
                read_request_head(&mut conn);
                let _ = conn.write_all(prefix);
            }
            held.push(conn);
        }
    });
    addr
}

fn read_request_head(conn: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match conn.read(&mut b) {
            Ok(1) => buf.push(b[0]),
            _ => break,
        }
    }
    buf
}

#[test]
fn stalled_server_fails_within_the_idle_timeout() {
    let addr = stalled_server(b"");
    runtime().block_on(async {
        let mut cfg = config(&format!("http://{addr}"));
        cfg.connect_timeout = Duration::from_millis(300);
        cfg.idle_timeout = Duration::from_millis(400);
        let c = Client::new(cfg).unwrap();
        // A streamed body is not retried: one idle timeout.
        let t = Instant::now();
        let data = pattern(10_000, 1);
        let e = c
            .put_object(
                "b",
                "k",
                HeaderMap::new(),
                pieces(&data, 1000),
                data.len() as u64,
            )
            .await
            .unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (0, CODE_TIMEOUT), "{e}");
        assert!(e.message.contains(&addr.to_string()), "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        // Retried: four tries, each bounded.
        let t = Instant::now();
        let e = c.head_bucket("b").await.unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (0, CODE_TIMEOUT), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    });
}

#[test]
fn stalled_body_fails_within_the_idle_timeout() {
    let addr = stalled_server(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nETag: \"x\"\r\n\r\nfirst bytes",
    );
    runtime().block_on(async {
        let mut cfg = config(&format!("http://{addr}"));
        cfg.idle_timeout = Duration::from_millis(400);
        let c = Client::new(cfg).unwrap();
        let r = c
            .get_object("b", "k", None, HeaderMap::new())
            .await
            .unwrap();
        let t = Instant::now();
        let mut body = r.body;
        let first = body.next().await.unwrap().unwrap();
        assert_eq!(&first[..], b"first bytes");
        let e = body.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "{:?}",
            t.elapsed()
        );
        assert!(body.next().await.is_none());
        // Collected: a transport error.
        let e = c.get_small("b", "k", 1 << 20).await.unwrap_err();
        assert_eq!(e.status, 0, "{e}");
    });
}

/// A server answering each connection with the next canned answer (then
/// closing it); the count of requests it took.
fn canned_server(answers: Vec<&'static str>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let n = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let head = read_request_head(&mut conn);
            let head = String::from_utf8_lossy(&head).to_lowercase();
            // Drain a request body.
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
            {
                let mut body = vec![0; len];
                let _ = conn.read_exact(&mut body);
            }
            let i = n.fetch_add(1, Ordering::SeqCst);
            let answer = answers[i.min(answers.len() - 1)];
            let _ = conn.write_all(answer.as_bytes());
            let _ = conn.flush();
        }
    });
    (addr, count)
}

const SLOW_DOWN: &str = "HTTP/1.1 503 Slow Down\r\nConnection: close\r\nContent-Type: application/xml\r\nContent-Length: 91\r\n\r\n<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce rate</Message></Error>   ";
const OK_EMPTY: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
const DENIED: &str = "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 108\r\n\r\n<Error><Code>AccessDenied</Code><Message>Access &amp; &lt;denied&gt; &#233;</Message><RequestId>1</RequestId></Error>";
const COPY_ERROR_200: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 80\r\n\r\n<Error><Code>InternalError</Code><Message>We encountered an error</Message></Error>";

fn fix_len(answer: &str) -> &'static str {
    // Sets Content-Length to the body's length.
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| {
            if l.to_lowercase().starts_with("content-length:") {
                format!("Content-Length: {}", body.len())
            } else {
                l.to_owned()
            }
        })
        .collect();
    Box::leak(format!("{}\r\n\r\n{body}", head.join("\r\n")).into_boxed_str())
}

#[test]
fn retries_on_slow_down_then_succeeds() {
    let (addr, count) = canned_server(vec![fix_len(SLOW_DOWN), fix_len(SLOW_DOWN), OK_EMPTY]);
    runtime().block_on(async {
        let c = Client::new(config(&format!("http://{addr}"))).unwrap();
        c.head_bucket("b").await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 3);
    });
}

#[test]
fn retries_stop_after_three_and_streams_are_not_retried() {
    let (addr, count) = canned_server(vec![fix_len(SLOW_DOWN)]);
    runtime().block_on(async {
        let c = Client::new(config(&format!("http://{addr}"))).unwrap();
        let t = Instant::now();
        let e = c
            .put_small("b", "k", HeaderMap::new(), Bytes::from_static(b"abc"))
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code.as_str(), e.message.as_str()),
            (503, "SlowDown", "Reduce rate")
        );
        assert_eq!(count.load(Ordering::SeqCst), 4);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let e = c
            .put_object(
                "b",
                "k",
                HeaderMap::new(),
                pieces(&Bytes::from_static(b"abc"), 1),
                3,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, "SlowDown");
        assert_eq!(count.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn error_xml_is_parsed_and_not_retried() {
    let (addr, count) = canned_server(vec![fix_len(DENIED)]);
    runtime().block_on(async {
        let c = Client::new(config(&format!("http://{addr}"))).unwrap();
        let e: UpstreamError = c.get_small("b", "k", 100).await.unwrap_err();
        assert_eq!(e.status, 403);
        assert_eq!(e.code, "AccessDenied");
        assert_eq!(e.message, "Access & <denied> é");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn copy_error_in_200_is_an_error() {
    let (addr, count) = canned_server(vec![fix_len(COPY_ERROR_200)]);
    runtime().block_on(async {
        let c = Client::new(config(&format!("http://{addr}"))).unwrap();
        let e = c
            .copy_object("b", "src key", "b", "dst", HeaderMap::new())
            .await
            .unwrap_err();
        assert_eq!(e.code, "InternalError", "{e}");
        assert_eq!(e.message, "We encountered an error");
        // InternalError is retried.
        assert_eq!(count.load(Ordering::SeqCst), 4);
    });
}

#[test]
fn config_from_vars_and_debug_hide_the_secret() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let cfg = UpstreamConfig::from_vars(
        None,
        vars(&[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_DEFAULT_REGION", "eu-west-3"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "very-secret-value"),
            ("AWS_SESSION_TOKEN", "session-secret"),
        ]),
    )
    .unwrap();
    assert_eq!(cfg.endpoint.to_string(), "http://127.0.0.1:9000/");
    assert_eq!(cfg.region, "eu-west-3");
    let dbg = format!("{cfg:?} {:?}", cfg.credentials);
    assert!(dbg.contains("AKID"));
    assert!(
        !dbg.contains("very-secret-value") && !dbg.contains("session-secret"),
        "{dbg}"
    );
    let c = Client::new(cfg).unwrap();
    assert_eq!(c.endpoint(), "http://127.0.0.1:9000");
    assert!(!format!("{c:?}").contains("secret"));

    // The S3 endpoint wins, AWS_REGION wins; the URL argument wins over all.
    let both = vars(&[
        ("AWS_ENDPOINT_URL", "http://a:1"),
        ("AWS_ENDPOINT_URL_S3", "https://s3.example:8443/"),
        ("AWS_REGION", "ap-south-1"),
        ("AWS_DEFAULT_REGION", "eu-west-3"),
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
    ]);
    let cfg = UpstreamConfig::from_vars(None, both).unwrap();
    assert_eq!(cfg.endpoint.to_string(), "https://s3.example:8443/");
    assert_eq!(cfg.region, "ap-south-1");
    let cfg = UpstreamConfig::from_vars(Some("http://x:2"), both).unwrap();
    assert_eq!(cfg.endpoint.to_string(), "http://x:2/");
    let cfg = UpstreamConfig::from_vars(
        Some("http://x"),
        vars(&[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")]),
    )
    .unwrap();
    assert_eq!(cfg.region, "us-east-1");

    let err = |url: Option<&str>, v: &'static [(&'static str, &'static str)]| {
        let e = UpstreamConfig::from_vars(url, vars(v)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        e.to_string()
    };
    let creds: &[(&str, &str)] = &[("AWS_ACCESS_KEY_ID", "a"), ("AWS_SECRET_ACCESS_KEY", "s")];
    assert!(err(None, creds).contains("AWS_ENDPOINT_URL"));
    for bad in [
        "ftp://x",
        "http://x/path",
        "http://x/?q=1",
        "x:9000",
        "http://",
    ] {
        err(Some(bad), creds);
    }
    let e = err(
        Some("http://x"),
        &[("AWS_SECRET_ACCESS_KEY", "very-secret-value")],
    );
    assert!(
        e.contains("AWS_ACCESS_KEY_ID") && !e.contains("very-secret"),
        "{e}"
    );
    let e = err(Some("http://x"), &[("AWS_ACCESS_KEY_ID", "a")]);
    assert!(e.contains("AWS_SECRET_ACCESS_KEY"), "{e}");
}

#[test]
fn client_is_send_sync_and_futures_are_send() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let c = Client::new(config("http://127.0.0.1:1")).unwrap();
    send_sync(&c);
    send(c.get_object("b", "k", None, HeaderMap::new()));
    send(c.put_object("b", "k", HeaderMap::new(), pieces(&Bytes::new(), 1), 0));
    send(c.list_objects_v2("b", &ListParams::default()));
}

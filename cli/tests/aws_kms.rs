//! `objseal::AwsKms` (the library's `aws-kms` feature, which this package
//! enables) and `objseal --kms aws`: against a stub AWS KMS on a local
//! socket (error mapping, retries, timeouts, the request's form), and
//! against moto's KMS (round trips, refusals, the command line).
//!
//! moto is found as `$OBJSEAL_MOTO_SERVER`, else `moto_server` beside
//! `$OBJSEAL_S3_PYTHON`, else in the workspace's `.venv`; without it the
//! moto tests say so and pass, unless `OBJSEAL_REQUIRE_S3_CLIENTS=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use objseal::{AwsKms, AwsKmsConfig, EncryptionContext, Error, Kms, KmsError};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// A stub AWS KMS.

/// One request the stub received.
#[derive(Debug, Clone)]
struct Received {
    /// Lower-cased header names and their values.
    headers: Vec<(String, String)>,
    body: Value,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn target(&self) -> &str {
        self.header("x-amz-target").unwrap_or("")
    }
}

/// What the stub answers.
enum Reply {
    /// A status and a JSON body.
    Json(u16, Value),
    /// Waits, then answers.
    After(Duration, Box<Reply>),
}

fn aws_error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::Json(status, json!({ "__type": kind, "message": message }))
}

type Handler = dyn Fn(&Received, usize) -> Reply + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 answering each request (the n-th, from
/// 0) with `handler`; one thread per connection, so one slow answer
/// delays no other connection.
struct Stub {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Stub {
    fn start(handler: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let rec = received.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (rec, count, handler) = (rec.clone(), count.clone(), handler.clone());
                thread::spawn(move || serve_connection(conn, &rec, &count, &*handler));
            }
        });
        Stub { addr, received }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }

    /// An `AwsKms` for this stub (access key id `test`), with `timeout` as
    /// its request timeout.
    fn kms(&self, timeout: Duration) -> AwsKms {
        let mut config = AwsKmsConfig::new("us-east-1", "test", "stub-secret")
            .with_endpoint(self.endpoint())
            .unwrap();
        config.request_timeout = timeout;
        config.connect_timeout = Duration::from_secs(1);
        AwsKms::new(config).unwrap()
    }
}

fn serve_connection(
    conn: TcpStream,
    received: &Mutex<Vec<Received>>,
    count: &AtomicUsize,
    handler: &Handler,
) {
    conn.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((n, v)) = h.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Received {
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        let n = count.fetch_add(1, Ordering::SeqCst);
        received.lock().unwrap().push(req.clone());
        let mut reply = handler(&req, n);
        while let Reply::After(pause, next) = reply {
            thread::sleep(pause);
            reply = *next;
        }
        let Reply::Json(status, value) = reply else {
            unreachable!()
        };
        let text = value.to_string();
        let head = format!(
            "HTTP/1.1 {status} Stub\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nx-amzn-RequestId: stub\r\n\r\n",
            text.len()
        );
        if conn
            .write_all(head.as_bytes())
            .and_then(|()| conn.write_all(text.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

const ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const KEY_BYTES: [u8; 32] = [7u8; 32];

/// A successful GenerateDataKey or Decrypt answer.
fn data_key_reply() -> Reply {
    Reply::Json(
        200,
        json!({
            "CiphertextBlob": B64.encode(b"stub ciphertext blob"),
            "KeyId": ARN,
            "Plaintext": B64.encode(KEY_BYTES),
        }),
    )
}

fn ctx() -> EncryptionContext {
    EncryptionContext::new()
        .with("object", "bucket/key")
        .unwrap()
        .with("team", "blue")
        .unwrap()
}

fn kms_err(r: Result<impl std::fmt::Debug, Error>) -> KmsError {
    match r {
        Err(Error::Kms(k)) => k,
        other => panic!("expected a KMS error, got {other:?}"),
    }
}

#[test]
fn stub_aws_errors_map_to_kms_errors() {
    let pending = format!("{ARN} is pending deletion.");
    let disabled = format!("{ARN} is disabled.");
    let import = format!("{ARN} is pending import.");
    type Check = fn(&KmsError) -> bool;
    let cases: Vec<(&str, &str, &str, u32, Check)> = vec![
        (
            "GenerateDataKey",
            "com.amazonaws.kms#NotFoundException",
            "Alias arn:aws:kms:us-east-1:111122223333:alias/x is not found.",
            1,
            |e| matches!(e, KmsError::NotFound { key_id } if key_id == "alias/x"),
        ),
        (
            "GenerateDataKey",
            "DisabledException",
            &disabled,
            1,
            |e| matches!(e, KmsError::Disabled { arn } if arn == ARN),
        ),
        (
            "GenerateDataKey",
            "KMSInvalidStateException",
            &pending,
            2,
            |e| {
                matches!(e, KmsError::PendingDeletion { arn, deletion_date }
                    if arn == ARN && deletion_date == "2030-01-01T00:00:00Z")
            },
        ),
        (
            "GenerateDataKey",
            "KMSInvalidStateException",
            &import,
            1,
            |e| matches!(e, KmsError::InvalidState { arn, reason } if arn == ARN && reason.contains("pending import")),
        ),
        (
            "GenerateDataKey",
            "AccessDeniedException",
            "User is not authorized",
            1,
            |e| matches!(e, KmsError::AccessDenied { principal, key_id } if principal == "alice" && key_id == "alias/x"),
        ),
        (
            "GenerateDataKey",
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            1,
            |e| matches!(e, KmsError::AccessDenied { .. }),
        ),
        (
            "Decrypt",
            "InvalidCiphertextException",
            "",
            1,
            |e| matches!(e, KmsError::InvalidCiphertext { reason } if reason.contains("encryption context")),
        ),
        (
            "Decrypt",
            "IncorrectKeyException",
            "The key ID in the request does not identify a KMS key that can perform this operation.",
            1,
            |e| matches!(e, KmsError::IncorrectKey { expected, .. } if expected == "alias/x"),
        ),
        (
            "GenerateDataKey",
            "ValidationException",
            "1 validation error detected",
            1,
            |e| matches!(e, KmsError::Refused { code, message } if code == "ValidationException" && message.contains("validation")),
        ),
    ];
    for (op, kind, message, requests, check) in cases {
        let (kind_s, message_s) = (kind.to_owned(), message.to_owned());
        let stub = Stub::start(move |req, _| {
            if req.target() == "TrentService.DescribeKey" {
                return Reply::Json(
                    200,
                    json!({ "KeyMetadata": {
                        "KeyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "Arn": ARN,
                        "Enabled": false, "KeyState": "PendingDeletion",
                        "DeletionDate": 1_893_456_000.0,
                    }}),
                );
            }
            aws_error(400, &kind_s, &message_s)
        });
        let kms = stub.kms(Duration::from_secs(5));
        let err = if op == "Decrypt" {
            kms_err(kms.decrypt("alias/x", b"blob", &ctx(), "alice"))
        } else {
            kms_err(kms.generate_data_key("alias/x", &ctx(), "alice"))
        };
        assert!(check(&err), "{op} {kind}: mapped to {err:?}");
        assert_eq!(
            stub.count(),
            requests as usize,
            "{kind}: not retried (plus DescribeKey for a pending deletion)"
        );
        // Every one of them is reported by the S3 mapping and the CLI codes
        // without panicking, and the message names no secret.
        let shown = Error::Kms(err).to_string();
        assert!(!shown.contains("stub-secret"), "{shown}");
    }
}

#[test]
fn stub_sees_signed_well_formed_requests() {
    let stub = Stub::start(|_, _| data_key_reply());
    let mut config = AwsKmsConfig::new("us-east-1", "test", "stub-secret")
        .with_session_token("stub-session-token")
        .with_endpoint(stub.endpoint() + "/")
        .unwrap();
    config.request_timeout = Duration::from_secs(5);
    let kms = AwsKms::new(config).unwrap();
    let dbg = format!("{kms:?}");
    assert!(
        !dbg.contains("stub-secret") && !dbg.contains("stub-session-token"),
        "{dbg}"
    );

    let generated = kms.generate_data_key("alias/x", &ctx(), "alice").unwrap();
    assert_eq!(generated.key.expose_secret(), &KEY_BYTES);
    assert_eq!(generated.blob, b"stub ciphertext blob");
    assert_eq!(generated.key_arn, ARN);
    assert_eq!(generated.key_version, None);
    let decrypted = kms.decrypt(ARN, &generated.blob, &ctx(), "alice").unwrap();
    assert_eq!(decrypted.key.expose_secret(), &KEY_BYTES);
    assert_eq!(
        (decrypted.key_arn.as_str(), decrypted.key_version),
        (ARN, None)
    );

    let got = stub.received();
    assert_eq!(got.len(), 2);
    let context = json!({ "object": "bucket/key", "team": "blue" });
    for (req, op) in got.iter().zip(["GenerateDataKey", "Decrypt"]) {
        assert_eq!(req.target(), format!("TrentService.{op}"));
        assert_eq!(
            req.header("content-type"),
            Some("application/x-amz-json-1.1")
        );
        let auth = req.header("authorization").unwrap_or("");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=test/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/kms/aws4_request"), "{auth}");
        assert!(
            auth.contains("x-amz-target"),
            "X-Amz-Target is signed: {auth}"
        );
        assert!(auth.contains("x-amz-security-token"), "{auth}");
        assert!(!auth.contains("stub-secret"));
        assert!(req.header("x-amz-date").is_some_and(|d| d.len() == 16));
        assert_eq!(
            req.header("x-amz-security-token"),
            Some("stub-session-token")
        );
        assert_eq!(req.body["EncryptionContext"], context, "{op}");
    }
    assert_eq!(got[0].body["KeyId"], "alias/x");
    assert_eq!(got[0].body["KeySpec"], "AES_256");
    assert_eq!(got[1].body["KeyId"], ARN, "Decrypt names the key");
    assert_eq!(
        got[1].body["CiphertextBlob"],
        B64.encode(b"stub ciphertext blob")
    );

    // A Decrypt answered by another key than the ARN named is refused.
    let other = ARN.replace("1234abcd", "99999999");
    let err = kms_err(kms.decrypt(&other, b"blob", &ctx(), "alice"));
    assert!(
        matches!(&err, KmsError::IncorrectKey { expected, found } if *expected == other && found == ARN),
        "{err:?}"
    );
}

#[test]
fn stub_throttling_twice_then_success() {
    let stub = Stub::start(|_, n| {
        if n < 2 {
            aws_error(400, "ThrottlingException", "Rate exceeded")
        } else {
            data_key_reply()
        }
    });
    let kms = stub.kms(Duration::from_secs(5));
    let t = Instant::now();
    let k = kms.generate_data_key("alias/x", &ctx(), "alice").unwrap();
    assert_eq!(k.key.expose_secret(), &KEY_BYTES);
    assert_eq!(stub.count(), 3);
    // Two pauses: 25..=50 ms and 50..=100 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(75),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
}

#[test]
fn stub_always_throttling_gives_up_after_three_retries() {
    let stub = Stub::start(|_, n| {
        if n % 2 == 0 {
            aws_error(400, "ThrottlingException", "Rate exceeded")
        } else {
            aws_error(400, "com.amazonaws.kms#LimitExceededException", "Too many")
        }
    });
    let kms = stub.kms(Duration::from_secs(5));
    let t = Instant::now();
    let err = kms_err(kms.generate_data_key("alias/x", &ctx(), "alice"));
    assert!(
        matches!(&err, KmsError::Throttled { endpoint, attempts: 4 } if *endpoint == stub.endpoint()),
        "{err:?}"
    );
    assert_eq!(stub.count(), 4, "1 attempt + 3 retries");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let s3 = objseal::sse::S3Error::from(Error::Kms(err));
    assert_eq!((s3.code, s3.status), ("SlowDown", 503));
}

#[test]
fn stub_failing_kms_errors_after_retries() {
    let stub = Stub::start(|_, n| {
        if n % 2 == 0 {
            Reply::Json(500, json!({ "__type": "KMSInternalException" }))
        } else {
            Reply::Json(503, json!({}))
        }
    });
    let kms = stub.kms(Duration::from_secs(5));
    let err = kms_err(kms.generate_data_key("alias/x", &ctx(), "alice"));
    assert!(
        matches!(&err, KmsError::Unavailable { reason } if reason.contains(&stub.endpoint()) && reason.contains("4 attempt")),
        "{err:?}"
    );
    assert_eq!(stub.count(), 4);
    let s3 = objseal::sse::S3Error::from(Error::Kms(err));
    assert_eq!((s3.code, s3.status), ("ServiceUnavailable", 503));

    // Nothing listening: transport errors, retried, then Unavailable.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut config = AwsKmsConfig::new("us-east-1", "test", "stub-secret")
        .with_endpoint(format!("http://{addr}"))
        .unwrap();
    config.request_timeout = Duration::from_secs(3);
    let t = Instant::now();
    let err = kms_err(
        AwsKms::new(config)
            .unwrap()
            .generate_data_key("alias/x", &ctx(), "alice"),
    );
    assert!(matches!(err, KmsError::Unavailable { .. }), "{err:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn stub_slow_kms_fails_within_the_timeout() {
    let stub = Stub::start(|_, _| Reply::After(Duration::from_secs(4), Box::new(data_key_reply())));
    let kms = stub.kms(Duration::from_millis(600));
    let t = Instant::now();
    let err = kms_err(kms.generate_data_key("alias/x", &ctx(), "alice"));
    let took = t.elapsed();
    assert!(matches!(err, KmsError::Unavailable { .. }), "{err:?}");
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_millis(1500),
        "a hung KMS fails within its 600 ms bound, took {took:?}"
    );
}

#[test]
fn stub_a_hung_request_stalls_no_other() {
    let stub = Stub::start(|req, _| {
        if req.body["KeyId"] == "key-a" {
            Reply::After(Duration::from_secs(3), Box::new(data_key_reply()))
        } else {
            data_key_reply()
        }
    });
    let kms = Arc::new(stub.kms(Duration::from_secs(2)));
    // Warm the pool with a connection, which A then takes.
    kms.generate_data_key("key-b", &ctx(), "alice").unwrap();
    let a = {
        let kms = kms.clone();
        thread::spawn(move || {
            let t = Instant::now();
            (kms.generate_data_key("key-a", &ctx(), "alice"), t.elapsed())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while !stub.received().iter().any(|r| r.body["KeyId"] == "key-a") {
        assert!(Instant::now() < deadline, "A never reached the stub");
        thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    let b = kms.generate_data_key("key-b", &ctx(), "alice");
    let took = t.elapsed();
    assert!(b.is_ok(), "{b:?}");
    assert!(
        took < Duration::from_millis(500),
        "B waited {took:?} behind A"
    );
    assert!(
        !a.is_finished(),
        "A is still in flight while B was answered"
    );
    let (a, a_took) = a.join().unwrap();
    assert!(
        matches!(kms_err(a), KmsError::Unavailable { .. }),
        "A times out"
    );
    assert!(a_took < Duration::from_millis(2600), "{a_took:?}");
}

// ---------------------------------------------------------------------------
// The command line without a KMS: configuration errors and `objseal kms`.

fn objseal(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_objseal"));
    cmd.arg("--home").arg(home).args(args).stdin(Stdio::null());
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_PROFILE",
    ] {
        cmd.env_remove(v);
    }
    cmd.env("OBJSEAL_LOCK_TIMEOUT", "5");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cli_kms_aws_needs_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let input = dir.path().join("in.txt");
    std::fs::write(&input, b"hello").unwrap();
    let input = input.to_str().unwrap();

    let o = objseal(&home, &["--kms", "aws", "seal", input, "--sse", "kms"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("AWS_ACCESS_KEY_ID"), "{}", stderr(&o));

    let creds = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "cli-secret"),
    ];
    let o = objseal(
        &home,
        &["--kms", "aws", "seal", input, "--sse", "kms"],
        &creds,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("AWS_REGION"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("cli-secret"));

    // The local KMS's management commands are refused with --kms aws.
    let o = objseal(&home, &["--kms", "aws", "kms", "list"], &creds);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("AWS KMS"), "{}", stderr(&o));
    let o = objseal(&home, &["--kms", "nope", "kms", "list"], &[]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "an unknown --kms value is a usage error"
    );

    // An unreachable KMS: exit 3, within the request timeout.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "cli-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_KMS", endpoint.as_str()),
    ];
    let o = objseal(
        &home,
        &["--kms", "aws", "seal", input, "--sse", "kms", "-o", "-"],
        &env,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("unavailable"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------
// moto.

/// `moto_server` on 127.0.0.1, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_server() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("OBJSEAL_MOTO_SERVER").map(PathBuf::from),
        std::env::var_os("OBJSEAL_S3_PYTHON")
            .map(PathBuf::from)
            .and_then(|p| p.parent().map(|d| d.join("moto_server"))),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/moto_server")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

/// Starts moto, or says why not (a failure when
/// `OBJSEAL_REQUIRE_S3_CLIENTS=1`).
fn start_moto(test: &str) -> Option<Moto> {
    let Some(bin) = moto_server() else {
        assert!(
            std::env::var("OBJSEAL_REQUIRE_S3_CLIENTS").as_deref() != Ok("1"),
            "moto_server not found (OBJSEAL_MOTO_SERVER, beside OBJSEAL_S3_PYTHON, .venv) and OBJSEAL_REQUIRE_S3_CLIENTS=1"
        );
        eprintln!(
            "{test}: skipped, moto_server not found (set OBJSEAL_MOTO_SERVER or OBJSEAL_S3_PYTHON)"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("moto.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", "0"])
        .current_dir(dir.path())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("MOTO_PORT")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let mut moto = Moto {
        child,
        endpoint: String::new(),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(port) = text
            .split("Running on http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|p| p.parse::<u16>().ok())
            && TcpStream::connect(("127.0.0.1", port)).is_ok()
        {
            moto.endpoint = format!("http://127.0.0.1:{port}");
            return Some(moto);
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!("moto_server exited ({status}):\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not start within 20 s:\n{text}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn moto_kms(moto: &Moto) -> AwsKms {
    let mut config = AwsKmsConfig::new("us-east-1", "test", "test")
        .with_endpoint(&moto.endpoint)
        .unwrap();
    config.request_timeout = Duration::from_secs(10);
    AwsKms::new(config).unwrap()
}

#[test]
fn moto_data_keys_round_trip_and_refusals() {
    let Some(moto) = start_moto("moto_data_keys_round_trip_and_refusals") else {
        return;
    };
    let kms = moto_kms(&moto);
    let one = kms.create_key("objseal aws_kms test one").unwrap();
    let two = kms.create_key("objseal aws_kms test two").unwrap();
    kms.create_alias("alias/objseal-one", &one.key_id).unwrap();
    assert!(one.arn.starts_with("arn:aws:kms:us-east-1:") && one.arn.ends_with(&one.key_id));
    assert!(one.enabled);

    // GenerateDataKey by alias, id and ARN; Decrypt by ARN.
    for reference in ["alias/objseal-one", one.key_id.as_str(), one.arn.as_str()] {
        let g = kms.generate_data_key(reference, &ctx(), "alice").unwrap();
        assert_eq!(g.key_arn, one.arn, "{reference}");
        assert_eq!(g.key_version, None);
        let d = kms.decrypt(&g.key_arn, &g.blob, &ctx(), "alice").unwrap();
        assert_eq!(d.key.expose_secret(), g.key.expose_secret(), "{reference}");
        assert_eq!(d.key_arn, one.arn);
    }
    let g = kms
        .generate_data_key("alias/objseal-one", &ctx(), "alice")
        .unwrap();
    // Decrypt by alias works too.
    let d = kms
        .decrypt("alias/objseal-one", &g.blob, &ctx(), "alice")
        .unwrap();
    assert_eq!(d.key.expose_secret(), g.key.expose_secret());

    // Another context.
    let other = EncryptionContext::new().with("team", "red").unwrap();
    let err = kms_err(kms.decrypt(&one.arn, &g.blob, &other, "alice"));
    assert!(matches!(err, KmsError::InvalidCiphertext { .. }), "{err:?}");
    // A damaged blob.
    let mut damaged = g.blob.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let err = kms_err(kms.decrypt(&one.arn, &damaged, &ctx(), "alice"));
    assert!(matches!(err, KmsError::InvalidCiphertext { .. }), "{err:?}");
    // Another key's id: AWS answers IncorrectKeyException; moto answers
    // AccessDeniedException ("The ciphertext refers to a customer master
    // key that does not exist ... or you are not allowed to access").
    let err = kms_err(kms.decrypt(&two.arn, &g.blob, &ctx(), "alice"));
    assert!(
        matches!(&err, KmsError::IncorrectKey { expected, .. } if *expected == two.arn)
            || matches!(&err, KmsError::AccessDenied { key_id, .. } if *key_id == two.arn),
        "{err:?}"
    );
    // Keys that do not exist.
    let err = kms_err(kms.generate_data_key("alias/objseal-missing", &ctx(), "alice"));
    assert!(
        matches!(&err, KmsError::NotFound { key_id } if key_id == "alias/objseal-missing"),
        "{err:?}"
    );
    let err = kms_err(kms.describe_key("alias/objseal-missing"));
    assert!(matches!(err, KmsError::NotFound { .. }), "{err:?}");

    // Encrypt, ReEncrypt, DescribeKey.
    let secret = [42u8; 32];
    let c = kms.encrypt("alias/objseal-one", &secret, &ctx()).unwrap();
    assert_eq!(c.key_arn, one.arn);
    let d = kms.decrypt(&one.arn, &c.blob, &ctx(), "alice").unwrap();
    assert_eq!(d.key.expose_secret(), &secret);
    let r = kms
        .re_encrypt(&c.blob, Some(&one.arn), &ctx(), &two.key_id, &other)
        .unwrap();
    assert_eq!(
        (r.key_arn.as_str(), r.source_key_arn.as_str()),
        (two.arn.as_str(), one.arn.as_str())
    );
    assert_ne!(r.blob, c.blob);
    let d = kms.decrypt(&two.arn, &r.blob, &other, "alice").unwrap();
    assert_eq!(d.key.expose_secret(), &secret);
    let err = kms_err(kms.decrypt(&two.arn, &r.blob, &ctx(), "alice"));
    assert!(matches!(err, KmsError::InvalidCiphertext { .. }), "{err:?}");
    let m = kms.describe_key("alias/objseal-one").unwrap();
    assert_eq!(
        (m.arn.as_str(), m.key_id.as_str()),
        (one.arn.as_str(), one.key_id.as_str())
    );
    assert_eq!((m.enabled, m.key_state.as_str()), (true, "Enabled"));
    assert_eq!(m.description, "objseal aws_kms test one");
    assert_eq!(m.deletion_date, None);
}

#[test]
fn moto_cli_seals_and_opens_with_kms_aws() {
    let Some(moto) = start_moto("moto_cli_seals_and_opens_with_kms_aws") else {
        return;
    };
    let kms = moto_kms(&moto);
    let key = kms.create_key("objseal cli test").unwrap();
    kms.create_alias("alias/objseal-cli", &key.key_id).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let input = dir.path().join("report.csv");
    let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&input, &plain).unwrap();
    let sealed = dir.path().join("report.csv.osl");
    let opened = dir.path().join("copy.csv");
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL_KMS", moto.endpoint.as_str()),
    ];
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let o = objseal(
        &home,
        &[
            "--kms",
            "aws",
            "seal",
            &s(&input),
            "--sse",
            "kms",
            "--kms-key",
            "alias/objseal-cli",
            "--context",
            "team=blue",
            "-o",
            &s(&sealed),
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = objseal(
        &home,
        &["--kms", "aws", "open", &s(&sealed), "-o", &s(&opened)],
        &env,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&opened).unwrap(), plain);

    // The envelope records the AWS key ARN.
    let o = objseal(&home, &["inspect", &s(&sealed), "--json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&key.arn));

    // Without --kms aws the local KMS does not know the key.
    let o = objseal(&home, &["open", &s(&sealed), "-o", "-"], &[]);
    assert_ne!(o.status.code(), Some(0));

    // A key that does not exist: exit 3, naming it.
    let o = objseal(
        &home,
        &[
            "--kms",
            "aws",
            "seal",
            &s(&input),
            "--sse",
            "kms",
            "--kms-key",
            "alias/objseal-missing",
            "-o",
            "-",
        ],
        &env,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("alias/objseal-missing"),
        "{}",
        stderr(&o)
    );
}

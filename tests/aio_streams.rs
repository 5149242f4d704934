//! The async adapters (feature `tokio`): objects sealed and opened as byte
//! streams from async code, with a KMS that bridges to async code, with
//! declared and unknown lengths, errors that end the stream, and
//! cancellation by dropping the output.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use objseal::aio::{self, OpenSpec, SealSpec};
use objseal::keys::{DecryptedDataKey, EncryptionContext, GeneratedDataKey, Kms, LocalKms};
use objseal::{BodyError, Engine, Error, Keyring, ObjectBinding};

/// A KMS whose calls are async underneath (as an HTTP client's would be),
/// bridged with `Handle::block_on`: legal on the blocking pool, a panic on
/// a runtime worker thread.
struct AsyncBacked {
    inner: LocalKms,
    handle: tokio::runtime::Handle,
    calls: AtomicUsize,
}

impl AsyncBacked {
    fn remote_call(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.handle
            .block_on(tokio::time::sleep(Duration::from_millis(5)));
    }
}

impl Kms for AsyncBacked {
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<GeneratedDataKey, Error> {
        self.remote_call();
        self.inner.generate_data_key(key_id, context, principal)
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<DecryptedDataKey, Error> {
        self.remote_call();
        self.inner.decrypt(key_id, blob, context, principal)
    }
}

fn pieces(data: &[u8], piece: usize) -> Vec<Bytes> {
    data.chunks(piece.max(1))
        .map(Bytes::copy_from_slice)
        .collect()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 9) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_kms_through_an_async_kms_from_async_code() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(AsyncBacked {
        inner: LocalKms::open(dir.path(), "eu-west-1", "111122223333").unwrap(),
        handle: tokio::runtime::Handle::current(),
        calls: AtomicUsize::new(0),
    });
    let arn = kms.inner.create_key("k", "admin").unwrap().arn;
    let engine = Arc::new(Engine::builder().kms(kms.clone()).build());
    let obj = ObjectBinding::new("bucket", "async").unwrap();
    let pt = data(300_000);
    let mode = SealSpec::Kms {
        key_id: Some(arn),
        context: None,
        bucket_key: false,
    };
    for len in [Some(pt.len() as u64), None] {
        let sealed = aio::seal_stream(
            engine.clone(),
            mode.clone(),
            obj.clone(),
            len,
            aio::iter_stream(pieces(&pt, 10_000)),
        );
        let stored = sealed.collect_bytes().await.unwrap();
        let opened = aio::open_stream(
            engine.clone(),
            OpenSpec::Managed,
            obj.clone(),
            aio::iter_stream(pieces(&stored, 4_096)),
        );
        assert_eq!(opened.collect_bytes().await.unwrap(), pt);
    }
    assert_eq!(kms.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test(flavor = "current_thread")]
async fn works_on_a_single_threaded_runtime_too() {
    let engine = Arc::new(
        Engine::builder()
            .keyring(Arc::new(Keyring::in_memory("k").unwrap()))
            .build(),
    );
    let obj = ObjectBinding::new("b", "k").unwrap();
    let key = Arc::new(objseal::CustomerKey::generate().unwrap());
    let pt = data(50_000);
    let mut sealed = aio::seal_stream(
        engine.clone(),
        SealSpec::C(key.clone()),
        obj.clone(),
        None,
        aio::iter_stream(pieces(&pt, 777)),
    );
    let mut stored = Vec::new();
    while let Some(piece) = sealed.next_piece().await {
        let piece = piece.unwrap();
        assert!(piece.len() <= aio::PIECE_LEN);
        stored.extend_from_slice(&piece);
    }
    let report = sealed.finish().await.unwrap();
    assert_eq!(report.plaintext_len, pt.len() as u64);
    assert_eq!(report.stored_len, stored.len() as u64);
    assert!(report.envelope.length_from_body);
    // As an AsyncRead.
    use tokio::io::AsyncReadExt;
    let mut r = aio::open_stream(
        engine,
        OpenSpec::Customer(key),
        obj,
        aio::iter_stream(vec![Bytes::from(stored)]),
    );
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, pt);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_body_ends_the_stream_with_its_error() {
    let engine = Arc::new(
        Engine::builder()
            .keyring(Arc::new(Keyring::in_memory("k").unwrap()))
            .build(),
    );
    let obj = ObjectBinding::new("b", "k").unwrap();
    let mut s = aio::seal_stream(
        engine.clone(),
        SealSpec::S3,
        obj.clone(),
        Some(10),
        aio::iter_stream(vec![Bytes::from_static(b"four")]),
    );
    let mut saw_error = false;
    while let Some(piece) = s.next_piece().await {
        if piece.is_err() {
            saw_error = true;
        }
    }
    assert!(saw_error, "the stream must not end as if complete");
    assert!(matches!(
        s.finish().await,
        Err(Error::Body(BodyError::DeclaredLength {
            declared: 10,
            received: 4
        }))
    ));
    // An input error ends the output with an error too.
    let bad = futures_stream(vec![
        Ok(Bytes::from_static(b"abc")),
        Err(io::Error::other("client went away")),
    ]);
    let s = aio::seal_stream(engine.clone(), SealSpec::S3, obj.clone(), None, bad);
    assert!(s.collect_bytes().await.is_err());
    // Tampered stored bytes: the open stream fails.
    let stored = aio::seal_stream(
        engine.clone(),
        SealSpec::S3,
        obj.clone(),
        None,
        aio::iter_stream(pieces(&data(40_000), 5_000)),
    )
    .collect_bytes()
    .await
    .unwrap();
    let mut bad = stored.to_vec();
    let at = bad.len() - 20;
    bad[at] ^= 1;
    let opened = aio::open_stream(
        engine,
        OpenSpec::Managed,
        obj,
        aio::iter_stream(vec![Bytes::from(bad)]),
    );
    assert!(opened.collect_bytes().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_output_stops_the_work() {
    let engine = Arc::new(
        Engine::builder()
            .keyring(Arc::new(Keyring::in_memory("k").unwrap()))
            .build(),
    );
    let pulled = Arc::new(AtomicUsize::new(0));
    let endless = Endless {
        pulled: pulled.clone(),
    };
    let mut s = aio::seal_stream(
        engine,
        SealSpec::S3,
        ObjectBinding::new("b", "k").unwrap(),
        None,
        endless,
    );
    assert!(s.next_piece().await.unwrap().is_ok());
    drop(s);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_drop = pulled.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        after_drop,
        "input still being pulled after the output was dropped"
    );
}

/// An endless input of 64 KiB pieces, counting what was pulled.
struct Endless {
    pulled: Arc<AtomicUsize>,
}

impl futures_core::Stream for Endless {
    type Item = io::Result<Bytes>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.pulled.fetch_add(1, Ordering::SeqCst);
        std::task::Poll::Ready(Some(Ok(Bytes::from(vec![7u8; 64 * 1024]))))
    }
}

fn futures_stream(
    items: Vec<io::Result<Bytes>>,
) -> impl futures_core::Stream<Item = io::Result<Bytes>> + Send + 'static {
    struct S(std::vec::IntoIter<io::Result<Bytes>>);
    impl futures_core::Stream for S {
        type Item = io::Result<Bytes>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    S(items.into_iter())
}

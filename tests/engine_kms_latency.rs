//! A slow or hung KMS: no lock is held across a KMS request. First seals in
//! several buckets with Bucket Keys overlap their KMS requests; concurrent
//! first uses of one bucket key make one request; a hung request for one
//! key does not stall another key.
//!
//! The KMS here is LocalKms behind a wrapper that sleeps (or blocks until
//! released) before each call, counting calls in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use objseal::keys::{DecryptedDataKey, EncryptionContext, GeneratedDataKey, Kms, LocalKms};
use objseal::{Engine, Error, ObjectBinding, OpenWith, SealMode};

const DELAY: Duration = Duration::from_millis(200);

struct Slow {
    inner: LocalKms,
    /// Calls whose key reference contains this are held until released.
    hang: Option<String>,
    released: Mutex<bool>,
    cv: Condvar,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    calls: AtomicUsize,
}

impl Slow {
    fn new(dir: &std::path::Path, hang: Option<String>) -> Self {
        Slow {
            inner: LocalKms::open(dir, "eu-west-1", "111122223333").unwrap(),
            hang,
            released: Mutex::new(false),
            cv: Condvar::new(),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
        }
    }

    fn wait(&self, key: &str) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        if self.hang.as_deref().is_some_and(|h| key.contains(h)) {
            // Held until the test releases it (bounded: 20 s at most).
            let mut released = self.released.lock().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !*released && Instant::now() < deadline {
                released = self
                    .cv
                    .wait_timeout(released, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
        } else {
            std::thread::sleep(DELAY);
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

impl Kms for Slow {
    fn generate_data_key(
        &self,
        key_id: &str,
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<GeneratedDataKey, Error> {
        self.wait(key_id);
        self.inner.generate_data_key(key_id, context, principal)
    }

    fn decrypt(
        &self,
        key_id: &str,
        blob: &[u8],
        context: &EncryptionContext,
        principal: &str,
    ) -> Result<DecryptedDataKey, Error> {
        self.wait(key_id);
        self.inner.decrypt(key_id, blob, context, principal)
    }
}

fn seal_in(engine: &Engine, mode: &SealMode<'_>, bucket: &str, key: &str) -> Vec<u8> {
    let obj = ObjectBinding::new(bucket, key).unwrap();
    engine.seal(mode, &obj, b"payload").unwrap()
}

#[test]
fn first_seals_in_four_buckets_overlap_their_kms_requests() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(Slow::new(dir.path(), None));
    let arn = kms.inner.create_key("k", "admin").unwrap().arn;
    let engine = Engine::builder().kms(kms.clone()).build();
    let mode = SealMode::kms(&arn).with_bucket_key(true);
    let start = Instant::now();
    std::thread::scope(|s| {
        for b in 0..4 {
            let (engine, mode) = (&engine, &mode);
            s.spawn(move || seal_in(engine, mode, &format!("bucket-{b}"), "first"));
        }
    });
    let took = start.elapsed();
    assert_eq!(kms.calls.load(Ordering::SeqCst), 4);
    assert_eq!(kms.most_in_flight.load(Ordering::SeqCst), 4);
    eprintln!("4 first Bucket Key seals with a {DELAY:?} KMS: {took:?}");
    assert!(
        took <= DELAY * 3 / 2,
        "4 buckets took {took:?}, one KMS call takes {DELAY:?}: requests were serialised"
    );
}

#[test]
fn concurrent_first_uses_of_one_bucket_key_make_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let kms = Arc::new(Slow::new(dir.path(), None));
    let arn = kms.inner.create_key("k", "admin").unwrap().arn;
    let engine = Engine::builder().kms(kms.clone()).build();
    let mode = SealMode::kms(&arn).with_bucket_key(true);
    let sealed: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (engine, mode) = (&engine, &mode);
                s.spawn(move || seal_in(engine, mode, "one-bucket", &format!("o{i}")))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(kms.calls.load(Ordering::SeqCst), 1);
    // A second engine (cold cache) opening all eight concurrently: one
    // Decrypt, and every object opens.
    let reader = Engine::builder().kms(kms.clone()).build();
    std::thread::scope(|s| {
        for (i, obj) in sealed.iter().enumerate() {
            let reader = &reader;
            s.spawn(move || {
                let binding = ObjectBinding::new("one-bucket", format!("o{i}")).unwrap();
                assert_eq!(
                    reader.open(OpenWith::Managed, &binding, obj).unwrap(),
                    b"payload"
                );
            });
        }
    });
    assert_eq!(kms.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_hung_kms_request_for_one_key_does_not_stall_another() {
    let dir = tempfile::tempdir().unwrap();
    let probe = LocalKms::open(dir.path(), "eu-west-1", "111122223333").unwrap();
    let hung = probe.create_key("hung", "admin").unwrap();
    let fine = probe.create_key("fine", "admin").unwrap();
    drop(probe);
    let kms = Arc::new(Slow::new(dir.path(), Some(hung.key_id.clone())));
    let engine = Engine::builder().kms(kms.clone()).build();
    let hung_mode = SealMode::kms(&hung.arn).with_bucket_key(true);
    let fine_mode = SealMode::kms(&fine.arn).with_bucket_key(true);
    std::thread::scope(|s| {
        let stuck = s.spawn(|| seal_in(&engine, &hung_mode, "b", "stuck"));
        // Let the hung request start and hold whatever it holds.
        while kms.in_flight.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let start = Instant::now();
        seal_in(&engine, &fine_mode, "b", "free");
        seal_in(&engine, &fine_mode, "other-bucket", "free");
        let took = start.elapsed();
        assert!(!stuck.is_finished(), "the hung request was not hung");
        assert!(
            took < DELAY * 4,
            "seals under another key took {took:?} while one key's request hung"
        );
        kms.release();
        stuck.join().unwrap();
    });
}

/// A KMS that refuses after a delay.
struct SlowRefusal {
    calls: AtomicUsize,
}

impl Kms for SlowRefusal {
    fn generate_data_key(
        &self,
        key_id: &str,
        _: &EncryptionContext,
        _: &str,
    ) -> Result<GeneratedDataKey, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(DELAY);
        Err(objseal::KmsError::Disabled {
            arn: key_id.to_owned(),
        }
        .into())
    }

    fn decrypt(
        &self,
        _: &str,
        _: &[u8],
        _: &EncryptionContext,
        _: &str,
    ) -> Result<DecryptedDataKey, Error> {
        unreachable!("nothing is sealed")
    }
}

#[test]
fn callers_waiting_on_a_refused_request_share_the_refusal() {
    let kms = Arc::new(SlowRefusal {
        calls: AtomicUsize::new(0),
    });
    let engine = Engine::builder().kms(kms.clone()).build();
    let mode = SealMode::kms("arn:aws:kms:eu-west-1:111122223333:key/x").with_bucket_key(true);
    let start = Instant::now();
    std::thread::scope(|s| {
        for i in 0..8 {
            let (engine, mode) = (&engine, &mode);
            s.spawn(move || {
                let obj = ObjectBinding::new("bucket", format!("o{i}")).unwrap();
                let e = engine.seal(mode, &obj, b"x").unwrap_err();
                assert!(
                    matches!(e, Error::Kms(objseal::KmsError::Disabled { .. })),
                    "{e:?}"
                );
            });
        }
    });
    let took = start.elapsed();
    // Not 8 requests one after another (1.6 s): the burst shares answers.
    assert!(took < DELAY * 4, "8 refused callers took {took:?}");
    assert!(kms.calls.load(Ordering::SeqCst) < 8);
}

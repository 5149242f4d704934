//! 1 GiB through the async API in bounded memory: sealed from a stream to a
//! file and opened from the file as a stream, with and without a declared
//! length, then range-read, while the process's peak resident memory is
//! watched (Linux: `/proc/self/clear_refs` resets the peak, `VmHWM` reads
//! it). The one test in its binary, so nothing else runs beside it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use objseal::aio::{self, OpenSpec, SealSpec};
use objseal::body::ByteRange;
use objseal::{Engine, Keyring, ObjectBinding, OpenWith};
use tokio::io::AsyncWriteExt;

const TOTAL: u64 = 1 << 30;
const PIECE: usize = 1 << 20;
/// The bound the adapters promise for an object of any size, over what the
/// process used before.
const BUDGET: u64 = 64 << 20;

/// The byte at `offset` of the test object.
fn byte_at(offset: u64) -> u8 {
    (offset ^ (offset >> 11) ^ (offset >> 23)) as u8
}

fn fill(buf: &mut [u8], start: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte_at(start + i as u64);
    }
}

/// The object as a stream of 1 MiB pieces, made on the fly.
struct Generated {
    at: u64,
}

impl futures_core::Stream for Generated {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.at >= TOTAL {
            return Poll::Ready(None);
        }
        let n = (TOTAL - self.at).min(PIECE as u64) as usize;
        let mut buf = vec![0u8; n];
        fill(&mut buf, self.at);
        self.at += n as u64;
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    }
}

fn status_kib(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak-RSS counter; false where the kernel cannot.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_sealed_and_opened_as_streams_in_bounded_memory() {
    let engine = Arc::new(
        Engine::builder()
            .keyring(Arc::new(Keyring::in_memory("k").unwrap()))
            .build(),
    );
    let dir = tempfile::tempdir().unwrap();
    let can_measure = reset_peak() && status_kib("VmHWM:").is_some();
    for declared in [Some(TOTAL), None] {
        let obj = ObjectBinding::new("bucket", format!("big-{}", declared.is_some())).unwrap();
        let path = dir.path().join(obj.key());
        let baseline = status_kib("VmRSS:").unwrap_or(0) << 10;
        reset_peak();
        // Seal: generated stream -> sealed stream -> file.
        let mut sealed = aio::seal_stream(
            engine.clone(),
            SealSpec::S3,
            obj.clone(),
            declared,
            Generated { at: 0 },
        );
        let mut file = tokio::fs::File::create(&path).await.unwrap();
        while let Some(piece) = sealed.next_piece().await {
            file.write_all(&piece.unwrap()).await.unwrap();
        }
        file.flush().await.unwrap();
        drop(file);
        let report = sealed.finish().await.unwrap();
        assert_eq!(report.plaintext_len, TOTAL);
        assert_eq!(report.envelope.length_from_body, declared.is_none());
        // Open: file -> stored stream -> plaintext stream, compared as it comes.
        let file = tokio::fs::File::open(&path).await.unwrap();
        let mut opened = aio::open_stream(
            engine.clone(),
            OpenSpec::Managed,
            obj.clone(),
            aio::reader_stream(file, PIECE),
        );
        let mut at = 0u64;
        let mut want = vec![0u8; aio::PIECE_LEN];
        while let Some(piece) = opened.next_piece().await {
            let piece = piece.unwrap();
            fill(&mut want[..piece.len()], at);
            assert!(
                piece[..] == want[..piece.len()],
                "plaintext differs near {at}"
            );
            at += piece.len() as u64;
        }
        assert_eq!(at, TOTAL);
        opened.finish().await.unwrap();
        // Ranges: the last 100 bytes (suffix: needs the length) and a span
        // across chunk boundaries in the middle, read on the blocking pool.
        for range in [
            ByteRange::Last(100),
            ByteRange::from(500_000_000..500_100_000),
        ] {
            let (e, o, p) = (engine.clone(), obj.clone(), path.clone());
            let got = aio::read_stream(move || {
                e.open_file_range(OpenWith::Managed, &o, &p, range)
                    .map(io::Cursor::new)
            })
            .collect_bytes()
            .await
            .unwrap();
            let r = range.satisfiable(TOTAL).unwrap();
            let mut want = vec![0u8; (r.end - r.start) as usize];
            fill(&mut want, r.start);
            assert!(got[..] == want[..], "{range:?}");
        }
        if can_measure {
            let peak = status_kib("VmHWM:").unwrap() << 10;
            let grew = peak.saturating_sub(baseline);
            eprintln!(
                "1 GiB, length {}: peak RSS {} MiB, {} MiB over the {} MiB before",
                if declared.is_some() {
                    "declared"
                } else {
                    "unknown"
                },
                peak >> 20,
                grew >> 20,
                baseline >> 20
            );
            assert!(
                grew <= BUDGET,
                "peak memory grew by {} MiB, over the {} MiB budget",
                grew >> 20,
                BUDGET >> 20
            );
        } else {
            eprintln!("peak RSS cannot be measured here; sizes checked only");
        }
        std::fs::remove_file(&path).unwrap();
    }
}

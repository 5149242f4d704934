//! Logic of the `keys_open` fuzz target, shared with the replay test
//! (`tests/fuzz_replay.rs`).
//!
//! Input: a mode byte, then arbitrary bytes. They are parsed as the wrapped
//! key's `details` for that mode (whatever parses must encode back to the
//! same bytes), and the whole input is opened as a stored object by an
//! engine with an in-memory keyring, with and without a customer key, and
//! read through the streaming reader. Nothing may panic, and nothing random
//! may open.

use std::hint::black_box;
use std::io::Read;
use std::sync::{Arc, OnceLock};

use objseal::keys::{CustomerKey, Details, Keyring};
use objseal::{Engine, Mode, ObjectBinding, OpenWith};

fn engine() -> &'static (Engine, CustomerKey, ObjectBinding) {
    static E: OnceLock<(Engine, CustomerKey, ObjectBinding)> = OnceLock::new();
    E.get_or_init(|| {
        let ring = Arc::new(Keyring::in_memory("fuzz").expect("keyring"));
        (
            Engine::builder().keyring(ring).build(),
            CustomerKey::from_bytes([7; 32]),
            ObjectBinding::new("bucket", "key").expect("binding"),
        )
    })
}

pub fn run(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mode = match first % 3 {
        0 => Mode::SseS3,
        1 => Mode::SseKms,
        _ => Mode::SseC,
    };
    if let Ok(d) = Details::parse(mode, rest) {
        assert_eq!(
            d.encode().expect("parsed details encode"),
            rest,
            "parse -> encode is not the identity"
        );
    }
    let (engine, customer, obj) = engine();
    for with in [OpenWith::Managed, OpenWith::Customer(customer)] {
        assert!(engine.open(with, obj, data).is_err(), "random bytes opened");
        black_box(engine.open_range(with, obj, data, 0..10).is_err());
        if let Ok(mut r) = engine.open_reader(with, obj, data) {
            let mut out = Vec::new();
            black_box(r.read_to_end(&mut out).is_err());
        }
    }
}

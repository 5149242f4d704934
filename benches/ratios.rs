//! AES-256-GCM throughput ratios measured interleaved: every backend this
//! CPU can run, the `aes-gcm` crate, `ring` and `aws-lc-rs`, each timed in
//! turn within every round, so that a slow phase of a shared machine
//! (another tenant, a clock change) slows all of them alike. The table
//! gives, per size and operation, the median GB/s of each and the median of
//! the per-round ratios, and cycles per byte from a clock measured by a
//! dependent multiply chain in the same run. Criterion (`benches/cipher.rs`)
//! gives the distributions; this gives ratios that survive noise. Then the
//! cost of a key set-up used for one 64-byte seal, and last, the whole-body
//! parallel seal of 256 MiB against `copy_from_slice`, the same way.
//!
//! `cargo bench --bench ratios` (`ROUNDS=N` to change the 201 rounds;
//! `CONTENDERS=a,b` to time only those, `SIZES=64,1024` only those sizes,
//! `BODY=0` to skip the 256 MiB body run, `ALIGN=n` to start every buffer
//! n bytes past a 64-byte boundary).
//!
//! The table is also written as CSV (`target/ratios/ratios.csv`: op, size,
//! contender, median GB/s, cycles per byte) and drawn as an SVG plot
//! (`target/ratios/ratios.svg`: GB/s by message size, one line per
//! contender and backend, seal and open side by side, the CPU's model and
//! AES-related flags from `/proc/cpuinfo` in the title); `RATIOS_OUT=dir`
//! writes them elsewhere. `docs/ratios.svg`, shown in the README, is one
//! such plot.

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::aead::{AeadInOut, KeyInit};
use objseal::cipher::{Aes256Gcm, Backend};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, Tag, UnboundKey};

/// A named key set-up plus one seal, timed per call.
type Setup = (String, Box<dyn Fn(&mut [u8])>);

const SIZES: [usize; 5] = [64, 1024, 16 * 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 32] = [0x5a; 32];
const NONCE: [u8; 12] = [0xa5; 12];
/// Bytes of fresh buffers per timed batch: the pool stays in L2, as a
/// buffer just received or just read from a file would be.
const POOL_BYTES: usize = 512 * 1024;

/// Seals (`true`) or opens one buffer in place; opening takes the tag.
type Run = Box<dyn Fn(bool, &mut [u8], &[u8; 16])>;

/// One implementation under test.
struct Contender {
    name: String,
    run: Run,
}

fn contenders() -> Vec<Contender> {
    let mut all = Vec::new();
    for backend in Backend::available() {
        let gcm = Aes256Gcm::with_backend(&KEY, backend).unwrap();
        all.push(Contender {
            name: backend.to_string(),
            run: Box::new(move |seal, buf, tag| {
                if seal {
                    black_box(gcm.seal_in_place(&NONCE, b"", buf).unwrap());
                } else {
                    gcm.open_in_place(&NONCE, b"", buf, tag).unwrap();
                }
            }),
        });
    }
    let reference = aes_gcm::Aes256Gcm::new(&KEY.into());
    all.push(Contender {
        name: "aes-gcm".into(),
        run: Box::new(move |seal, buf, tag| {
            if seal {
                black_box(
                    reference
                        .encrypt_inout_detached(&NONCE.into(), b"", buf.into())
                        .unwrap(),
                );
            } else {
                reference
                    .decrypt_inout_detached(&NONCE.into(), b"", buf.into(), &(*tag).into())
                    .unwrap();
            }
        }),
    });
    let ring = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap());
    all.push(Contender {
        name: "ring".into(),
        run: Box::new(move |seal, buf, tag| {
            let nonce = Nonce::assume_unique_for_key(NONCE);
            if seal {
                let _tag = black_box(
                    ring.seal_in_place_separate_tag(nonce, Aad::empty(), buf)
                        .unwrap(),
                );
            } else {
                ring.open_in_place_separate_tag(nonce, Aad::empty(), Tag::from(*tag), buf, 0..)
                    .unwrap();
            }
        }),
    });
    // aws-lc-rs builds C code for minutes: a contender only with
    // `--features bench-aws-lc`, so the test suite does not pay for it.
    #[cfg(feature = "bench-aws-lc")]
    let aws = aws_lc_rs::aead::LessSafeKey::new(
        aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &KEY).unwrap(),
    );
    #[cfg(feature = "bench-aws-lc")]
    all.push(Contender {
        name: "aws-lc-rs".into(),
        run: Box::new(move |seal, buf, tag| {
            use aws_lc_rs::aead::{Aad, Nonce};
            let nonce = Nonce::assume_unique_for_key(NONCE);
            if seal {
                let _tag = black_box(
                    aws.seal_in_place_separate_tag(nonce, Aad::empty(), buf)
                        .unwrap(),
                );
            } else {
                aws.open_in_place_separate_tag(nonce, Aad::empty(), tag, buf)
                    .unwrap();
            }
        }),
    });
    if let Ok(only) = std::env::var("CONTENDERS") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        all.retain(|c| only.contains(&c.name.as_str()));
    }
    all
}

/// The core clock in GHz: a chain of dependent multiply (3 cycles) and
/// rotate (1 cycle) steps, best of several tries.
fn clock_ghz() -> f64 {
    const STEPS: u64 = 50_000_000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut x: u64 = black_box(0x9e37_79b9_7f4a_7c15);
        let t = Instant::now();
        for _ in 0..STEPS {
            x = x.wrapping_mul(0x2545_f491_4f6c_dd1d).rotate_left(7);
        }
        black_box(x);
        best = best.min(t.elapsed().as_nanos() as f64);
    }
    4.0 * STEPS as f64 / best
}

/// The whole-body parallel seal of 256 MiB (`body::seal_into` on 1 and 2
/// rayon threads) against `copy_from_slice` of the same bytes, timed in
/// turn within each round, into buffers allocated and touched once.
fn body_versus_memcpy(rounds: usize) {
    use objseal::body::{self, DataKey};
    const SIZE: usize = 256 << 20;
    let pt = vec![0x3c_u8; SIZE];
    let mut sealed = vec![0u8; body::sealed_len(SIZE as u64).unwrap() as usize];
    let mut copy = vec![0u8; SIZE];
    let key = DataKey::from_bytes([1; 32]);
    let pools: Vec<_> = [1, 2]
        .iter()
        .map(|&n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .collect();
    // Seconds per round: [copy, seal 1 thread, seal 2 threads].
    let mut times: Vec<Vec<f64>> = (0..3).map(|_| Vec::with_capacity(rounds)).collect();
    for round in 0..rounds + 1 {
        for k in 0..3 {
            let which = (k + round) % 3;
            let t = Instant::now();
            match which {
                0 => black_box(&mut copy[..]).copy_from_slice(black_box(&pt)),
                w => pools[w - 1]
                    .install(|| body::seal_into(&key, b"bench", &pt, black_box(&mut sealed)))
                    .unwrap(),
            }
            if round > 0 {
                times[which].push(t.elapsed().as_secs_f64());
            }
        }
    }
    let gbs = |t: &[f64]| {
        let mut t = t.to_vec();
        SIZE as f64 / median(&mut t) / 1e9
    };
    let ratio = |a: usize| {
        let mut r: Vec<f64> = times[0].iter().zip(&times[a]).map(|(c, s)| c / s).collect();
        median(&mut r)
    };
    println!(
        "body seal 256 MiB: copy_from_slice {:.2} GB/s, seal 1 thread {:.2} GB/s ({:.2}x copy), 2 threads {:.2} GB/s ({:.2}x copy); {rounds} interleaved rounds",
        gbs(&times[0]),
        gbs(&times[1]),
        ratio(1),
        gbs(&times[2]),
        ratio(2)
    );
}

/// Key set-up, one 64-byte seal and drop, per implementation, timed in
/// turn within each round (what a fresh key per object costs).
fn key_setup(rounds: usize) {
    const PER_ROUND: usize = 200;
    let mut msg = [0x11u8; 64];
    let mut setups: Vec<Setup> = Vec::new();
    for backend in Backend::available() {
        setups.push((
            backend.to_string(),
            Box::new(move |buf| {
                let gcm = Aes256Gcm::with_backend(black_box(&KEY), backend).unwrap();
                black_box(gcm.seal_in_place(&NONCE, b"", buf).unwrap());
            }),
        ));
    }
    setups.push((
        "ring".into(),
        Box::new(|buf| {
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, black_box(&KEY)).unwrap());
            let nonce = Nonce::assume_unique_for_key(NONCE);
            let _tag = black_box(
                key.seal_in_place_separate_tag(nonce, Aad::empty(), buf)
                    .unwrap(),
            );
        }),
    ));
    #[cfg(feature = "bench-aws-lc")]
    setups.push((
        "aws-lc-rs".into(),
        Box::new(|buf| {
            use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
            let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, black_box(&KEY)).unwrap());
            let nonce = Nonce::assume_unique_for_key(NONCE);
            let _tag = black_box(
                key.seal_in_place_separate_tag(nonce, Aad::empty(), buf)
                    .unwrap(),
            );
        }),
    ));
    let mut times = vec![Vec::with_capacity(rounds); setups.len()];
    for round in 0..rounds + 1 {
        for k in 0..setups.len() {
            let c = (k + round) % setups.len();
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                (setups[c].1)(black_box(&mut msg));
            }
            if round > 0 {
                times[c].push(t.elapsed().as_nanos() as f64 / PER_ROUND as f64);
            }
        }
    }
    print!("key set-up + 64 B seal + drop (ns, median):");
    for ((name, _), t) in setups.iter().zip(&mut times) {
        print!("  {name} {:.0}", median(t));
    }
    println!();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(201);
    let ghz = clock_ghz();
    let all = contenders();
    println!("clock {ghz:.2} GHz (dependent multiply chain); {rounds} interleaved rounds");
    print!("{:<7} {:>8}", "op", "size");
    for c in &all {
        print!(" {:>16}", c.name);
    }
    println!("   ratios (median of per-round ratios)");
    let sizes: Vec<usize> = match std::env::var("SIZES") {
        Ok(v) => v.split(',').map(|s| s.trim().parse().unwrap()).collect(),
        Err(_) => SIZES.to_vec(),
    };
    // (op, size, contender, GB/s, cycles per byte), for the CSV and plot.
    let mut rows: Vec<(&str, usize, String, f64, f64)> = Vec::new();
    for seal in [true, false] {
        for &size in &sizes {
            let count = (POOL_BYTES / size).max(1);
            let mut ct = vec![0x11u8; size];
            let tag = Aes256Gcm::with_backend(&KEY, Backend::Portable)
                .unwrap()
                .seal_in_place(&NONCE, b"", &mut ct)
                .unwrap();
            // Each buffer starts `ALIGN` bytes past a 64-byte boundary when
            // that is set; otherwise where the allocator puts it.
            let align: Option<usize> = std::env::var("ALIGN").ok().map(|a| a.parse().unwrap());
            let mut backing: Vec<Vec<u8>> = (0..count).map(|_| vec![0u8; size + 128]).collect();
            let mut pool: Vec<&mut [u8]> = backing
                .iter_mut()
                .map(|b| {
                    let at = match align {
                        Some(a) => (a + 64 - b.as_ptr() as usize % 64) % 64,
                        None => 0,
                    };
                    &mut b[at..at + size]
                })
                .collect();
            // ns per byte, per contender, per round.
            let mut times = vec![Vec::with_capacity(rounds); all.len()];
            for round in 0..rounds + 1 {
                // Rotate the order, so no contender always runs first.
                for k in 0..all.len() {
                    let c = (k + round) % all.len();
                    for buf in pool.iter_mut() {
                        buf.copy_from_slice(&ct);
                    }
                    let t = Instant::now();
                    for buf in pool.iter_mut() {
                        (all[c].run)(seal, black_box(buf), &tag);
                    }
                    let ns = t.elapsed().as_nanos() as f64;
                    if round > 0 {
                        // Round 0 warms up.
                        times[c].push(ns / (count * size) as f64);
                    }
                }
            }
            let op = if seal { "seal" } else { "open" };
            print!("{op:<7} {size:>8}");
            for t in &times {
                let mut t = t.clone();
                let m = median(&mut t);
                print!(" {:>6.2} ({:.2}cpb)", 1.0 / m, m * ghz);
            }
            for (c, t) in all.iter().zip(&times) {
                let m = median(&mut t.clone());
                rows.push((op, size, c.name.clone(), 1.0 / m, m * ghz));
            }
            // Median over rounds of (the faster of `b` in that round) / `a`.
            let ratio = |a: &str, b: &[&str]| -> Option<f64> {
                let ia = all.iter().position(|c| c.name == a)?;
                let ib: Vec<usize> = b
                    .iter()
                    .map(|b| all.iter().position(|c| c.name == *b))
                    .collect::<Option<_>>()?;
                let mut r: Vec<f64> = (0..rounds)
                    .map(|k| {
                        let tb = ib.iter().map(|&i| times[i][k]).fold(f64::MAX, f64::min);
                        tb / times[ia][k]
                    })
                    .collect();
                Some(median(&mut r))
            };
            for (a, b, label) in [
                ("vaes-clmul-avx512", &["aws-lc-rs"][..], "512/aws-lc"),
                (
                    "vaes-clmul-avx512",
                    &["ring", "aws-lc-rs"][..],
                    "512/best(ring,aws-lc)",
                ),
                ("vaes-clmul-avx512", &["vaes-clmul-avx2"][..], "512/256"),
                ("vaes-clmul-avx2", &["ring"][..], "256/ring"),
                ("vaes-clmul-avx2", &["aws-lc-rs"][..], "256/aws-lc"),
                ("aesni-clmul", &["aes-gcm"][..], "aesni/aes-gcm"),
                ("portable", &["aes-gcm"][..], "portable/aes-gcm"),
            ] {
                if let Some(r) = ratio(a, b) {
                    print!("  {label} {r:.2}");
                }
            }
            println!();
        }
    }
    let names: Vec<String> = all.iter().map(|c| c.name.clone()).collect();
    write_outputs(&rows, &names, ghz, rounds);
    key_setup(rounds);
    if std::env::var("BODY").as_deref() != Ok("0") {
        body_versus_memcpy((rounds / 5).max(5));
    }
}

/// The CPU's model name and the flags that decide the backends, from
/// `/proc/cpuinfo` (empty where there is none).
fn cpu_name() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let flags = field("flags").unwrap_or_default();
    let have: Vec<&str> = flags.split_whitespace().collect();
    let wanted = [
        "aes",
        "pclmulqdq",
        "avx2",
        "vaes",
        "vpclmulqdq",
        "avx512f",
        "avx512bw",
        "avx512vl",
    ];
    let present: Vec<&str> = wanted.into_iter().filter(|f| have.contains(f)).collect();
    if present.is_empty() {
        model
    } else {
        format!("{model} ({})", present.join(" "))
    }
}

/// Writes the table as CSV and as an SVG plot into `RATIOS_OUT` (default
/// `target/ratios`), and says where.
fn write_outputs(
    rows: &[(&str, usize, String, f64, f64)],
    names: &[String],
    ghz: f64,
    rounds: usize,
) {
    let dir = match std::env::var_os("RATIOS_OUT") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target/tmp has a parent")
            .join("ratios"),
    };
    let cpu = cpu_name();
    let mut csv = String::from("op,size_bytes,contender,gb_per_s,cycles_per_byte\n");
    for (op, size, name, gbs, cpb) in rows {
        csv.push_str(&format!("{op},{size},{name},{gbs:.4},{cpb:.4}\n"));
    }
    let svg = svg_plot(rows, names, &format!("{cpu}, {ghz:.2} GHz"), rounds);
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("ratios.csv"), csv))
        .and_then(|()| std::fs::write(dir.join("ratios.svg"), svg));
    match written {
        Ok(()) => println!(
            "table: {}, plot: {}",
            dir.join("ratios.csv").display(),
            dir.join("ratios.svg").display()
        ),
        Err(e) => eprintln!("could not write {}: {e}", dir.display()),
    }
}

/// `text` with the XML specials escaped.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A size in bytes as `64 B`, `16 KiB`, `1 MiB`.
fn size_label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Two panels (seal, open) of GB/s against message size on a log scale,
/// one line per contender, drawn as plain SVG (no plotting dependency).
fn svg_plot(
    rows: &[(&str, usize, String, f64, f64)],
    names: &[String],
    cpu: &str,
    rounds: usize,
) -> String {
    const COLORS: [&str; 8] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
    ];
    let (panel_w, panel_h, left, top, gap) = (420.0, 300.0, 60.0, 70.0, 70.0);
    let legend_rows = names.len().div_ceil(4);
    let width = left + 2.0 * panel_w + gap + 20.0;
    let height = top + panel_h + 50.0 + 22.0 * legend_rows as f64 + 10.0;
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.1).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let (lo, hi) = (
        (*sizes.first().unwrap_or(&1) as f64).log2(),
        (*sizes.last().unwrap_or(&2) as f64).log2(),
    );
    let span = if hi > lo { hi - lo } else { 1.0 };
    let max = rows.iter().map(|r| r.3).fold(0.0, f64::max);
    let step = if max > 20.0 {
        5.0
    } else if max > 8.0 {
        2.0
    } else {
        1.0
    };
    let y_max = ((max / step).ceil() * step).max(step);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">AES-256-GCM in place, GB/s by message size (single thread)</text>\n\
         <text x=\"{}\" y=\"42\" text-anchor=\"middle\" font-size=\"12\">{}; median of {rounds} interleaved rounds</text>\n",
        width / 2.0,
        width / 2.0,
        xml(cpu)
    );
    for (p, op) in ["seal", "open"].iter().enumerate() {
        let x0 = left + p as f64 * (panel_w + gap);
        let x = |size: usize| x0 + ((size as f64).log2() - lo) / span * panel_w;
        let y = |gbs: f64| top + panel_h - gbs / y_max * panel_h;
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-weight=\"bold\">{op}</text>\n",
            x0 + panel_w / 2.0,
            top - 8.0
        ));
        let mut g = 0.0;
        while g <= y_max + 1e-9 {
            out.push_str(&format!(
                "<line x1=\"{x0}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{g}</text>\n",
                x0 + panel_w,
                x0 - 6.0,
                y(g) + 4.0,
                yy = y(g)
            ));
            g += step;
        }
        for &size in &sizes {
            out.push_str(&format!(
                "<line x1=\"{xx:.1}\" y1=\"{top}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/>\n\
                 <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                top + panel_h,
                top + panel_h + 16.0,
                size_label(size),
                xx = x(size)
            ));
        }
        out.push_str(&format!(
            "<rect x=\"{x0}\" y=\"{top}\" width=\"{panel_w}\" height=\"{panel_h}\" fill=\"none\" stroke=\"#444\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {:.1} {:.1})\">GB/s</text>\n",
            x0 - 40.0,
            top + panel_h / 2.0,
            x0 - 40.0,
            top + panel_h / 2.0
        ));
        for (i, name) in names.iter().enumerate() {
            let points: Vec<String> = rows
                .iter()
                .filter(|r| r.0 == *op && r.2 == *name)
                .map(|r| format!("{:.1},{:.1}", x(r.1), y(r.3)))
                .collect();
            let color = COLORS[i % COLORS.len()];
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
                points.join(" ")
            ));
            for pt in &points {
                let (px, py) = pt.split_once(',').expect("x,y");
                out.push_str(&format!(
                    "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{color}\"/>\n"
                ));
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        let (col, row) = (i % 4, i / 4);
        let lx = left + col as f64 * 200.0;
        let ly = top + panel_h + 44.0 + row as f64 * 22.0;
        let color = COLORS[i % COLORS.len()];
        out.push_str(&format!(
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{:.1}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"3\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>\n",
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            xml(name)
        ));
    }
    out.push_str("</svg>\n");
    out
}

//! Throughput of the core's per-byte passes, against memcpy.
//!
//! `cargo bench -p lariat-proto --bench throughput [-- FILTER]`
//!
//! Every payload byte a server receives goes through `apply_mask`, and every
//! text byte through `Utf8Validator::feed`; this measures both in GB/s (10^9
//! bytes per second) next to `std::str::from_utf8` and a plain
//! `copy_from_slice` of the same buffer, the reference for "as fast as memory".
//! Each case is warmed up, then timed in 31 samples of ~10 ms; the table shows
//! the median sample, the best one (the least disturbed by other processes:
//! the figure to compare on a busy machine) and the slowest.
//!
//! No dependencies: `std::hint::black_box` keeps the work from being optimised
//! away. Run under `cargo test --benches` (no `--bench` argument), each case
//! runs once, as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use lariat_proto::mask::apply_mask;
use lariat_proto::utf8::Utf8Validator;

const MIB: usize = 1 << 20;
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

struct Settings {
    warmup: Duration,
    sample: Duration,
    samples: usize,
}

struct Row {
    name: String,
    bytes: usize,
    median: f64,
    slowest: f64,
    fastest: f64,
}

/// Time `f` (which processes `bytes` bytes per call) and return GB/s figures.
fn measure(settings: &Settings, name: &str, bytes: usize, mut f: impl FnMut()) -> Row {
    // Warm up (caches, branch predictors, CPU frequency), and find how many
    // calls fill one sample.
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < settings.warmup || calls == 0 {
        f();
        calls += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / calls as f64;
    let iters = ((settings.sample.as_secs_f64() / per_call).ceil() as u64).max(1);

    let mut rates: Vec<f64> = (0..settings.samples)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            let secs = t.elapsed().as_secs_f64().max(1e-9);
            (bytes as f64 * iters as f64) / secs / 1e9
        })
        .collect();
    rates.sort_by(|a, b| a.total_cmp(b));
    Row {
        name: name.to_owned(),
        bytes,
        median: rates[rates.len() / 2],
        slowest: rates[0],
        fastest: rates[rates.len() - 1],
    }
}

/// `len` bytes of mixed UTF-8: ASCII, 2-, 3- and 4-byte sequences, cut on a
/// character boundary and padded with spaces.
fn mixed_utf8(len: usize) -> Vec<u8> {
    let unit = "Hello, κόσμε — €100 𝄞 日本語 año ŝi ĉiu 😀 ok; ";
    let mut s = String::with_capacity(len + unit.len());
    while s.len() < len {
        s.push_str(unit);
    }
    let mut end = len;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    let mut bytes = s.into_bytes();
    bytes.resize(len, b' ');
    bytes
}

fn ascii(len: usize) -> Vec<u8> {
    (0..len).map(|i| b' ' + (i * 7 % 95) as u8).collect()
}

fn human(bytes: usize) -> String {
    if bytes >= MIB && bytes / MIB * MIB == bytes {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes / 1024 * 1024 == bytes {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; anything else (cargo test) is a smoke run.
    let bench = args.iter().any(|a| a == "--bench");
    let filter: Option<&str> = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    let settings = if bench {
        Settings {
            warmup: Duration::from_millis(200),
            sample: Duration::from_millis(10),
            samples: 31,
        }
    } else {
        Settings {
            warmup: Duration::ZERO,
            sample: Duration::ZERO,
            samples: 1,
        }
    };

    let ascii_buf = ascii(MIB);
    let mixed_buf = mixed_utf8(MIB);
    assert!(std::str::from_utf8(&ascii_buf).is_ok());
    assert!(std::str::from_utf8(&mixed_buf).is_ok());

    let mut rows: Vec<Row> = Vec::new();
    let mut run = |name: &str, bytes: usize, f: &mut dyn FnMut()| {
        if filter.is_some_and(|p| !name.contains(p)) {
            return;
        }
        let row = measure(&settings, name, bytes, f);
        if !bench {
            println!("ok: {name}");
        }
        rows.push(row);
    };

    // The reference: a plain copy of the same 1 MiB.
    let mut dst = vec![0u8; MIB];
    run("memcpy (copy_from_slice)", MIB, &mut || {
        dst.copy_from_slice(black_box(&ascii_buf));
        black_box(&mut dst);
    });

    // Masking in place: the whole buffer, then as 64 KiB and 1 KiB frames (or
    // reads) of one payload, each piece at its offset so the key phase moves.
    let mut buf = ascii_buf.clone();
    for (label, chunk) in [
        ("1 MiB whole", MIB),
        ("64 KiB chunks", 64 * 1024),
        ("1 KiB chunks", 1024),
    ] {
        run(&format!("apply_mask, {label}"), MIB, &mut || {
            let b = black_box(&mut buf[..]);
            let mut offset = 0;
            for piece in b.chunks_mut(chunk) {
                apply_mask(piece, black_box(KEY), offset);
                offset += piece.len();
            }
            black_box(&mut buf);
        });
    }
    // Pieces that are not a multiple of 8 (a 125-byte control frame, odd reads)
    // keep the word loop unaligned to the payload start.
    run("apply_mask, 125 B chunks", MIB, &mut || {
        let b = black_box(&mut buf[..]);
        let mut offset = 0;
        for piece in b.chunks_mut(125) {
            apply_mask(piece, black_box(KEY), offset);
            offset += piece.len();
        }
        black_box(&mut buf);
    });

    // UTF-8: the incremental validator against std, on the same bytes.
    for (label, data, len) in [("ASCII", &ascii_buf, MIB), ("mixed UTF-8", &mixed_buf, MIB)] {
        run(&format!("Utf8Validator::feed, {label}"), len, &mut || {
            let mut v = Utf8Validator::default();
            let ok = v.feed(black_box(data)).is_ok() && v.finish().is_ok();
            assert!(black_box(ok));
        });
        run(
            &format!("Utf8Validator::feed 1 KiB pieces, {label}"),
            len,
            &mut || {
                // Pieces cut code points: exercises the carry between feeds.
                let mut v = Utf8Validator::default();
                for piece in black_box(data).chunks(1024) {
                    assert!(v.feed(piece).is_ok());
                }
                assert!(black_box(v.finish().is_ok()));
            },
        );
        run(&format!("std::str::from_utf8, {label}"), len, &mut || {
            assert!(black_box(std::str::from_utf8(black_box(data)).is_ok()));
        });
    }

    if !bench {
        return;
    }
    let memcpy = rows
        .iter()
        .find(|r| r.name.starts_with("memcpy"))
        .map(|r| r.median);
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    println!();
    println!(
        "{:<width$}  {:>7}  {:>11}  {:>9}  {:>9}  {:>9}",
        "case", "bytes", "median GB/s", "best GB/s", "slowest", "vs memcpy"
    );
    println!(
        "{}",
        "-".repeat(width + 2 + 7 + 2 + 11 + 2 + 9 + 2 + 9 + 2 + 9)
    );
    for r in &rows {
        let ratio = memcpy.map_or(String::from("-"), |m| format!("{:.2}x", r.median / m));
        println!(
            "{:<width$}  {:>7}  {:>11.2}  {:>9.2}  {:>9.2}  {:>9}",
            r.name,
            human(r.bytes),
            r.median,
            r.fastest,
            r.slowest,
            ratio
        );
    }
    println!();
    println!(
        "median of {} samples of ~{} ms after {} ms of warm-up per case; GB/s = 10^9 bytes/s",
        settings.samples,
        settings.sample.as_millis(),
        settings.warmup.as_millis()
    );
    // Other processes on the machine distort the figures: say so.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(load) = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
    {
        if load > cores as f64 * 0.75 {
            println!(
                "note: load average {load:.1} on {cores} cores while measuring: \
                 the medians are disturbed, compare the best column"
            );
        }
    }
}

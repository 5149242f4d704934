//! `objseal inspect`: a sealed object's envelope, without any secret.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use clap::Args;
use objseal::body::{CHUNK_LEN, COMMITMENT_LEN, SALT_LEN};
use objseal::keys::Details;
use objseal::{Mode, body};
use serde_json::{Value, json};

use super::object::read_envelope;
use super::{Failure, is_dash};

pub const HELP: &str = "\
Examples:
  objseal inspect report.csv.osl
  objseal inspect report.csv.osl --json | jq .key

Shows the mode, key id and version, KMS encryption context, lengths, chunk
count and the body's public salt and key commitment. For a multipart object
the expected body length and chunk count add up its parts (listed, with their
lengths, under part_list in --json), and salt and commitment are the first
part's. Never prints a key: the
wrapped data key and the SSE-C key check are public but not shown.";

/// `objseal inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// Sealed file, `-` for stdin.
    input: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::SseS3 => "SSE-S3",
        Mode::SseKms => "SSE-KMS",
        Mode::SseC => "SSE-C",
        _ => "unknown",
    }
}

/// Builds the report as JSON (also the source of the table).
pub fn run(a: InspectArgs) -> Result<(), Failure> {
    let name = &a.input;
    let mut input: Box<dyn Read> = if is_dash(name) {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(name).map_err(|e| Failure::io(name, &e))?)
    };
    let (env, used, head) = read_envelope(&mut input, name)?;
    let mut body_head = head[used..].to_vec();
    let need = SALT_LEN + COMMITMENT_LEN;
    if body_head.len() < need {
        let mut more = Vec::new();
        (&mut input)
            .take((need - body_head.len()) as u64)
            .read_to_end(&mut more)
            .map_err(|e| Failure::io(name, &e))?;
        body_head.extend_from_slice(&more);
    }
    let body_len = if is_dash(name) {
        let rest = io::copy(&mut input, &mut io::sink()).map_err(|e| Failure::io(name, &e))?;
        Some((head.len() - used) as u64 + rest)
    } else {
        std::fs::metadata(name)
            .ok()
            .map(|m| m.len().saturating_sub(used as u64))
    };
    let wk = &env.wrapped_key;
    let mut key = json!({
        "id": wk.key_id,
        "version": wk.key_version,
        "kek_salt": hex(&wk.kek_salt),
    });
    match Details::parse(env.mode, &wk.details) {
        Ok(Details::SseKms(d)) => {
            key["bucket_key"] = json!(d.bucket_key);
            let ctx: serde_json::Map<String, Value> = d
                .context
                .iter()
                .map(|(k, v)| (k.to_owned(), json!(v)))
                .collect();
            key["encryption_context"] = Value::Object(ctx);
        }
        Ok(Details::SseC(check)) => key["key_check_salt"] = json!(hex(&check.salt)),
        Ok(_) => {}
        Err(e) => return Err(Failure::from_error(e, name)),
    }
    // A multipart object's body is its part bodies, each with its own
    // header and final chunk.
    let lens: Vec<u64> = match &env.parts {
        Some(list) => list.parts.iter().map(|p| p.plaintext_len).collect(),
        None => vec![env.plaintext_len],
    };
    let expected = lens.iter().try_fold(0u64, |sum, &len| {
        body::sealed_len(len).ok().and_then(|l| sum.checked_add(l))
    });
    let chunks: u64 = lens.iter().map(|len| len / CHUNK_LEN as u64 + 1).sum();
    let part_list = env.parts.as_ref().map(|list| {
        list.parts
            .iter()
            .map(|p| json!({"number": p.number, "plaintext_len": p.plaintext_len}))
            .collect::<Vec<_>>()
    });
    let (salt, commitment) = if body_head.len() >= need {
        (
            json!(hex(&body_head[..SALT_LEN])),
            json!(hex(&body_head[SALT_LEN..need])),
        )
    } else {
        (Value::Null, Value::Null)
    };
    let report = json!({
        "file": name.display().to_string(),
        "mode": mode_name(env.mode),
        "bucket": env.binding.bucket(),
        "key_name": env.binding.key(),
        "part": env.binding.part(),
        "key": key,
        "algorithm": "Cobblestone-256 (AES-256-GCM, 16 KiB chunks, key commitment)",
        "plaintext_len": env.plaintext_len,
        "envelope_len": used,
        "body_len": body_len,
        "expected_body_len": expected,
        "chunks": chunks,
        "parts": env.parts.as_ref().map(|p| p.parts.len()),
        "part_list": part_list,
        "salt": salt,
        "commitment": commitment,
    });
    if a.json {
        println!("{report:#}");
        return Ok(());
    }
    let mut rows: Vec<(String, String)> = Vec::new();
    let plain = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    for field in [
        "file",
        "mode",
        "bucket",
        "key_name",
        "algorithm",
        "plaintext_len",
        "envelope_len",
        "body_len",
        "expected_body_len",
        "chunks",
        "parts",
        "salt",
        "commitment",
    ] {
        rows.push((field.replace('_', " "), plain(&report[field])));
    }
    if let Value::Object(k) = &report["key"] {
        for (f, v) in k {
            rows.push((format!("key {}", f.replace('_', " ")), plain(v)));
        }
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in rows {
        println!("{k:<width$}  {v}");
    }
    Ok(())
}

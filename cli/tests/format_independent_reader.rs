//! `docs/FORMAT.md` is enough to open every object objseal makes: a reader
//! written from the document alone, on RustCrypto primitives (AES-256-GCM,
//! HKDF-SHA-256, HMAC-SHA-256/512, SHA-256), base64 and a JSON parser,
//! opens objects sealed by the `objseal` binary (SSE-S3 across a keyring
//! rotation, SSE-KMS with the default key, a second key, a rotated key, a
//! caller context and a bucket key, SSE-C from a key file) and multipart
//! objects made with the library's `sse` API (gaps in the part numbers, an
//! empty part in the middle, all-empty), given only the home directory.
//!
//! The decryption side below calls nothing from objseal: every step cites
//! the section of `docs/FORMAT.md` it follows. objseal is used only to make
//! the objects.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use aes_gcm::aead::{AeadInOut, KeyInit};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

// ---------------------------------------------------------------------------
// The independent reader (docs/FORMAT.md only).
// ---------------------------------------------------------------------------

/// What the reader learnt while opening an object.
#[derive(Debug)]
struct Opened {
    plaintext: Vec<u8>,
    mode: u8,
    key_id: String,
    key_version: u32,
    /// SSE-KMS: the encryption context pairs and the bucket-key flag.
    context: Vec<(String, String)>,
    bucket_key: bool,
    /// Part numbers of a multipart object (empty for a single body).
    parts: Vec<u32>,
}

type R<T> = Result<T, String>;

/// Bounded big-endian reads (§1: check a length is present before using it).
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize, what: &str) -> R<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return Err(format!("input ends inside {what}"));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> R<[u8; N]> {
        Ok(self.take(N, what)?.try_into().unwrap())
    }
    fn u8(&mut self, what: &str) -> R<u8> {
        Ok(self.arr::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> R<u16> {
        self.arr(what).map(u16::from_be_bytes)
    }
    fn u32(&mut self, what: &str) -> R<u32> {
        self.arr(what).map(u32::from_be_bytes)
    }
    fn u64(&mut self, what: &str) -> R<u64> {
        self.arr(what).map(u64::from_be_bytes)
    }
    /// u16 length in `min..=max`, then that many bytes.
    fn bytes16(&mut self, min: usize, max: usize, what: &str) -> R<&'a [u8]> {
        let n = usize::from(self.u16(what)?);
        if !(min..=max).contains(&n) {
            return Err(format!("{what}: length {n} outside {min}..={max}"));
        }
        self.take(n, what)
    }
    fn utf8(&mut self, min: usize, max: usize, what: &str) -> R<String> {
        String::from_utf8(self.bytes16(min, max, what)?.to_vec())
            .map_err(|_| format!("{what} is not UTF-8"))
    }
    fn done(&self, what: &str) -> R<()> {
        match self.buf.len() - self.pos {
            0 => Ok(()),
            n => Err(format!("{n} trailing bytes after {what}")),
        }
    }
}

/// §1: the envelope fields.
struct Envelope {
    mode: u8,
    /// Flag 01: the body's size gives the plaintext length.
    length_from_body: bool,
    plaintext_len: u64,
    bucket: String,
    key: String,
    part: u32,
    key_id: String,
    key_version: u32,
    kek_salt: [u8; 32],
    wrapped: [u8; 48],
    details: Vec<u8>,
    parts: Vec<(u32, u64)>,
    mac: Option<[u8; 32]>,
}

/// §1: parses the envelope at the start of `bytes`; returns it and its length.
fn parse_envelope(bytes: &[u8]) -> R<(Envelope, usize)> {
    let mut c = Cur { buf: bytes, pos: 0 };
    if c.arr::<4>("magic")? != *b"\x89OSE" {
        return Err("bad magic".into());
    }
    let [version, algorithm, mode, flags] = c.arr::<4>("header")?;
    if version != 1 || algorithm != 1 || !(1..=3).contains(&mode) || flags & !1 != 0 {
        return Err(format!(
            "unsupported header {version} {algorithm} {mode} {flags}"
        ));
    }
    let plaintext_len = c.u64("plaintext length")?;
    if plaintext_len > 1 << 62 {
        return Err("plaintext length out of bounds".into());
    }
    let length_from_body = flags & 1 == 1;
    if length_from_body && plaintext_len != 0 {
        return Err("flag 01 with a stored length".into());
    }
    let bucket = c.utf8(1, 255, "bucket")?;
    let key = c.utf8(1, 1024, "object key")?;
    let part = c.u32("part number")?;
    if part > 10_000 {
        return Err("part number out of bounds".into());
    }
    let key_id = c.utf8(0, 2048, "key id")?;
    let key_version = c.u32("key version")?;
    let kek_salt = c.arr("KEK salt")?;
    let wrapped = c.arr("wrapped data key")?;
    let details_len = c.u32("details length")? as usize;
    if details_len > 65_536 {
        return Err("details too long".into());
    }
    let details = c.take(details_len, "details")?.to_vec();
    let count = usize::from(c.u16("part count")?);
    if count > 10_000 {
        return Err("part count out of bounds".into());
    }
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let n = c.u32("part number")?;
        let len = c.u64("part length")?;
        if !(1..=10_000).contains(&n) || len > 1 << 62 {
            return Err("part out of bounds".into());
        }
        if parts.last().is_some_and(|&(prev, _)| prev >= n) {
            return Err("part numbers do not strictly increase".into());
        }
        parts.push((n, len));
    }
    let mac = if count > 0 {
        if part != 0 {
            return Err("a part's envelope with a part list".into());
        }
        let sum = parts
            .iter()
            .try_fold(0u64, |s, &(_, l)| s.checked_add(l))
            .ok_or("part lengths overflow")?;
        if sum != plaintext_len {
            return Err("part lengths do not add up".into());
        }
        Some(c.arr("part-list MAC")?)
    } else {
        None
    };
    let env = Envelope {
        mode,
        length_from_body,
        plaintext_len,
        bucket,
        key,
        part,
        key_id,
        key_version,
        kek_salt,
        wrapped,
        details,
        parts,
        mac,
    };
    Ok((env, c.pos))
}

fn put16(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, &mut okm)
        .unwrap();
    okm
}

fn hmac256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn hmac512(key: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    let mut m = <Hmac<Sha512> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Equality without an early exit.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// AES-256-GCM open, detached tag.
fn gcm_open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], ct: &[u8], tag: &[u8]) -> R<Vec<u8>> {
    let cipher = aes_gcm::Aes256Gcm::new(key.into());
    let mut buf = ct.to_vec();
    let tag: [u8; 16] = tag.try_into().map_err(|_| "tag length")?;
    cipher
        .decrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into(), &tag.into())
        .map_err(|_| "GCM tag does not verify".to_string())?;
    Ok(buf)
}

/// §2: the body context of bucket `b`, object key `k`, part `p`.
fn body_context(b: &str, k: &str, p: u32) -> Vec<u8> {
    let mut out = b"objseal/v1 body context\0".to_vec();
    out.push(1);
    put16(&mut out, b.as_bytes());
    put16(&mut out, k.as_bytes());
    out.extend_from_slice(&p.to_be_bytes());
    out
}

/// §3: `sealed_len(L)`.
fn sealed_len(l: u64) -> u64 {
    56 + l + 16 * (l / 16384 + 1)
}

/// §3: opens one Cobblestone-256 body, commitment first.
fn open_body(dk: &[u8; 32], context: &[u8], body: &[u8]) -> R<Vec<u8>> {
    if body.len() < 56 {
        return Err("body shorter than 56 bytes".into());
    }
    let (salt, stored) = (&body[..24], &body[24..56]);
    // HKDF-Expand-SHA-512 with the data key as PRK, computed from HMAC.
    let mut info = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\0".to_vec();
    info.extend_from_slice(salt);
    info.extend_from_slice(context);
    let t1 = hmac512(dk, &[&info, &[1]]);
    let t2 = hmac512(dk, &[&t1, &info, &[2]]);
    let mut okm = t1.to_vec();
    okm.extend_from_slice(&t2);
    let aead_key: [u8; 32] = okm[..32].try_into().unwrap();
    let base_nonce: [u8; 12] = okm[32..44].try_into().unwrap();
    if !ct_eq(&okm[44..76], stored) {
        return Err("commitment mismatch".into());
    }
    let rest = &body[56..];
    match rest.len() % 16400 {
        0 => return Err("the final short chunk is missing".into()),
        1..=15 => return Err("final chunk too short for a tag".into()),
        _ => {}
    }
    let mut out = Vec::with_capacity(rest.len());
    for (k, chunk) in rest.chunks(16400).enumerate() {
        let mut nonce = base_nonce;
        for (n, i) in nonce.iter_mut().zip((k as u128).to_be_bytes()[4..].iter()) {
            *n ^= i;
        }
        let (ct, tag) = chunk.split_at(chunk.len() - 16);
        out.extend_from_slice(&gcm_open(&aead_key, &nonce, &[], ct, tag)?);
    }
    Ok(out)
}

/// §5: the SSE-KMS details.
struct KmsDetails {
    bucket_key: bool,
    /// The pairs as stored (sorted) and their canonical encoding `enc(ctx)`.
    pairs: Vec<(String, String)>,
    encoded: Vec<u8>,
    blob: Vec<u8>,
}

fn parse_kms_details(d: &[u8]) -> R<KmsDetails> {
    let mut c = Cur { buf: d, pos: 0 };
    if c.u8("details version")? != 1 {
        return Err("details version".into());
    }
    let flags = c.u8("flags")?;
    if flags & !1 != 0 {
        return Err("reserved KMS flags".into());
    }
    let start = c.pos;
    let count = c.u16("pair count")?;
    if count > 64 {
        return Err("too many pairs".into());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for _ in 0..count {
        let k = c.utf8(1, 256, "context key")?;
        let v = c.utf8(0, 2048, "context value")?;
        if pairs
            .last()
            .is_some_and(|(prev, _)| prev.as_bytes() >= k.as_bytes())
        {
            return Err("context keys not strictly increasing".into());
        }
        pairs.push((k, v));
    }
    let encoded = d[start..c.pos].to_vec();
    let blob = c.bytes16(1, 4096, "blob")?.to_vec();
    c.done("KMS details")?;
    Ok(KmsDetails {
        bucket_key: flags & 1 != 0,
        pairs,
        encoded,
        blob,
    })
}

fn read_json(path: &Path, format: &str) -> R<Value> {
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    if v["format"] != format {
        return Err(format!("{}: format {}", path.display(), v["format"]));
    }
    Ok(v)
}

fn b64_key(v: &Value) -> R<[u8; 32]> {
    let raw = BASE64
        .decode(v.as_str().ok_or("key is not a string")?)
        .map_err(|e| e.to_string())?;
    raw.try_into().map_err(|_| "key is not 32 bytes".into())
}

/// §7.2: the SSE-S3 wrapping key of `env` from `keyring.json`.
fn sse_s3_key(home: &Path, env: &Envelope) -> R<[u8; 32]> {
    if !env.details.is_empty() {
        return Err("SSE-S3 details must be empty".into());
    }
    let ring = read_json(&home.join("keyring.json"), "objseal-keyring/1")?;
    if ring["key_id"] != env.key_id.as_str() || env.key_version == 0 {
        return Err("not this keyring's key id, or version 0".into());
    }
    let version = ring["versions"]
        .as_array()
        .ok_or("versions")?
        .iter()
        .find(|v| v["version"] == env.key_version)
        .ok_or("no such keyring version")?;
    b64_key(&version["key"])
}

/// §7.3, §7.4: the wrapping key inside a local KMS blob, from `kms/keys.json`.
fn local_kms_key(home: &Path, env: &Envelope, d: &KmsDetails) -> R<[u8; 32]> {
    let blob = &d.blob;
    if blob.len() != 160 || &blob[..6] != b"OSKMS1" || blob[6..8] != [0, 36] {
        return Err("not a local KMS blob".into());
    }
    let key_id = std::str::from_utf8(&blob[8..44]).map_err(|_| "blob key id")?;
    let version = u32::from_be_bytes(blob[44..48].try_into().unwrap());
    let store = read_json(&home.join("kms/keys.json"), "objseal-localkms/1")?;
    let cmk = store["keys"]
        .as_array()
        .ok_or("keys")?
        .iter()
        .find(|k| k["key_id"] == key_id)
        .ok_or("the blob's key is not in kms/keys.json")?;
    let material = b64_key(
        &cmk["versions"]
            .as_array()
            .ok_or("versions")?
            .iter()
            .find(|v| v["version"] == version)
            .ok_or("the blob's key version is not in kms/keys.json")?["material"],
    )?;
    let arn = format!(
        "arn:aws:kms:{}:{}:key/{key_id}",
        cmk["region"].as_str().ok_or("region")?,
        cmk["account"].as_str().ok_or("account")?
    );
    if env.key_id != arn || env.key_version != version {
        return Err("the envelope does not name the blob's key and version".into());
    }
    let mut hash = Sha256::new();
    hash.update(b"objseal/v1 localkms context\0");
    hash.update(&d.encoded);
    if hash.finalize()[..] != blob[80..112] {
        return Err("context hash mismatch".into());
    }
    let mut info = b"objseal/v1 localkms wrap\0".to_vec();
    put16(&mut info, arn.as_bytes());
    info.extend_from_slice(&version.to_be_bytes());
    info.extend_from_slice(&d.encoded);
    let kek = hkdf_sha256(&material, &blob[48..80], &info);
    let key = gcm_open(
        &kek,
        &[0; 12],
        &blob[..112],
        &blob[112..144],
        &blob[144..160],
    )?;
    Ok(key.try_into().unwrap())
}

/// §8: opens a stored object from the home directory (and, for SSE-C, the
/// customer key), read as the object its envelope names.
fn open_object(home: &Path, object: &[u8], customer_key: Option<&[u8; 32]>) -> R<Opened> {
    let (env, used) = parse_envelope(object)?;
    let body = &object[used..];
    let (bucket, key, part) = (env.bucket.clone(), env.key.clone(), env.part);
    let mut context = Vec::new();
    let mut bucket_key = false;
    // Step 2: the wrapping key.
    let wk = match env.mode {
        1 => sse_s3_key(home, &env)?,
        2 => {
            let d = parse_kms_details(&env.details)?;
            let k = local_kms_key(home, &env, &d)?;
            (context, bucket_key) = (d.pairs, d.bucket_key);
            k
        }
        _ => {
            let ck = customer_key.ok_or("SSE-C needs the customer key")?;
            let mut c = Cur {
                buf: &env.details,
                pos: 0,
            };
            if c.u8("details version")? != 1 {
                return Err("details version".into());
            }
            let salt = c.arr::<32>("key-check salt")?;
            let check = c.arr::<32>("key check")?;
            c.done("SSE-C details")?;
            if !env.key_id.is_empty() || env.key_version != 0 {
                return Err("SSE-C key id must be empty and version 0".into());
            }
            if !ct_eq(
                &hmac256(ck, &[b"objseal/v1 sse-c key check\0", &salt]),
                &check,
            ) {
                return Err("wrong customer key (key check)".into());
            }
            *ck
        }
    };
    // Step 3: unwrap the data key (§5): the plaintext length, 0 for
    // multipart, 2^64 - 1 for flag 01.
    let l_w = if env.length_from_body {
        u64::MAX
    } else if env.mac.is_some() {
        0
    } else {
        env.plaintext_len
    };
    // §1: with flag 01, the length the body's size gives.
    let plaintext_len = if env.length_from_body {
        let n = body.len() as u64;
        let (q, r) = (
            (n.checked_sub(56).ok_or("body too short")?) / 16400,
            (n - 56) % 16400,
        );
        if r < 16 {
            return Err("the body cannot end in a final chunk".into());
        }
        16384 * q + r - 16
    } else {
        env.plaintext_len
    };
    let mut info = b"objseal/v1 wrap\0".to_vec();
    info.push(env.mode);
    put16(&mut info, env.key_id.as_bytes());
    info.extend_from_slice(&env.key_version.to_be_bytes());
    put16(&mut info, bucket.as_bytes());
    put16(&mut info, key.as_bytes());
    info.extend_from_slice(&part.to_be_bytes());
    let kek = hkdf_sha256(&wk, &env.kek_salt, &info);
    let mut aad = b"objseal/v1 wrapped key\0".to_vec();
    aad.extend_from_slice(&l_w.to_be_bytes());
    aad.extend_from_slice(&(env.details.len() as u32).to_be_bytes());
    aad.extend_from_slice(&env.details);
    let dk: [u8; 32] = gcm_open(&kek, &[0; 12], &aad, &env.wrapped[..32], &env.wrapped[32..])?
        .try_into()
        .unwrap();
    // Steps 4 and 5: the body, or the parts' bodies.
    let plaintext = match env.mac {
        None => {
            if body.len() as u64 != sealed_len(plaintext_len) {
                return Err("body length does not match the envelope".into());
            }
            open_body(&dk, &body_context(&bucket, &key, part), body)?
        }
        Some(stored_mac) => {
            let mut slices = Vec::new();
            let mut at = 0usize;
            for &(_, len) in &env.parts {
                let end = at + sealed_len(len) as usize;
                slices.push(body.get(at..end).ok_or("parts run past the input")?);
                at = end;
            }
            if at != body.len() {
                return Err("bytes after the last part".into());
            }
            let mac_key = hmac256(&dk, &[b"objseal/v1 part list key\0"]);
            let mut msg = b"objseal/v1 part list\0".to_vec();
            put16(&mut msg, bucket.as_bytes());
            put16(&mut msg, key.as_bytes());
            msg.extend_from_slice(&(env.parts.len() as u16).to_be_bytes());
            for &(n, len) in &env.parts {
                msg.extend_from_slice(&n.to_be_bytes());
                msg.extend_from_slice(&len.to_be_bytes());
            }
            for s in &slices {
                msg.extend_from_slice(&s[..56]);
            }
            if !ct_eq(&hmac256(&mac_key, &[&msg]), &stored_mac) {
                return Err("part-list MAC mismatch".into());
            }
            let mut out = Vec::new();
            for (&(n, _), s) in env.parts.iter().zip(&slices) {
                out.extend_from_slice(&open_body(&dk, &body_context(&bucket, &key, n), s)?);
            }
            out
        }
    };
    if plaintext.len() as u64 != plaintext_len {
        return Err("plaintext length differs from the envelope's".into());
    }
    Ok(Opened {
        plaintext,
        mode: env.mode,
        key_id: env.key_id,
        key_version: env.key_version,
        context,
        bucket_key,
        parts: env.parts.iter().map(|&(n, _)| n).collect(),
    })
}

// ---------------------------------------------------------------------------
// Making objects with objseal.
// ---------------------------------------------------------------------------

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the binary on this home and asserts success; returns stdout.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_objseal"))
            .arg("--home")
            .arg(self.home())
            .arg("--quiet")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("OBJSEAL_HOME")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "objseal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes `data` to `name` and seals it into `name.osl` with `flags`.
    fn seal(&self, name: &str, data: &[u8], flags: &[&str]) -> Vec<u8> {
        std::fs::write(self.path(name), data).unwrap();
        let out = format!("{name}.osl");
        let mut args = vec!["seal", name, "-o", &out];
        args.extend_from_slice(flags);
        self.cli(&args);
        std::fs::read(self.path(&out)).unwrap()
    }

    /// Seals `data` from stdin, without `--size` (length unknown: flag 01).
    fn seal_stdin(&self, key: &str, data: &[u8], flags: &[&str]) -> Vec<u8> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_objseal"))
            .arg("--home")
            .arg(self.home())
            .arg("--quiet")
            .args(["seal", "-", "--key", key, "-o", "-"])
            .args(flags)
            .current_dir(self.dir.path())
            .env_remove("OBJSEAL_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let input = data.to_vec();
        let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// A 0600 file of 32 raw key bytes.
    fn key_file(&self, name: &str, key: &[u8; 32]) -> PathBuf {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self.path(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .unwrap();
        std::io::Write::write_all(&mut f, key).unwrap();
        p
    }
}

/// Deterministic bytes (xorshift), distinct per seed.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Opens with the independent reader and checks the plaintext.
fn reads_back(home: &Path, object: &[u8], key: Option<&[u8; 32]>, want: &[u8]) -> Opened {
    let got = open_object(home, object, key).unwrap();
    assert_eq!(got.plaintext.len(), want.len());
    assert!(got.plaintext == want, "plaintext differs");
    got
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn objects_sealed_by_the_cli_open_from_the_home_alone() {
    let fx = Fixture::new();
    let home = fx.home();
    let big = data(100 * 1024, 1);
    let exact = data(2 * 16384, 2);
    let small = b"a short object".to_vec();

    // SSE-S3 under version 1, then version 2 after a rotation.
    let s3_big = fx.seal("big.bin", &big, &[]);
    let s3_empty = fx.seal("empty.bin", b"", &[]);
    fx.cli(&["keys", "rotate"]);
    let s3_exact = fx.seal("exact.bin", &exact, &[]);
    for (obj, want, version) in [
        (&s3_big, &big, 1),
        (&s3_empty, &vec![], 1),
        (&s3_exact, &exact, 2),
    ] {
        let o = reads_back(&home, obj, None, want);
        assert_eq!(
            (o.mode, o.key_id.as_str(), o.key_version),
            (1, "objseal-s3", version)
        );
    }

    // Sealed from stdin with no length given: the envelope has flag 01 and
    // the body's size gives the length (§1), at and off chunk edges.
    for (n, len) in [(0usize, 0usize), (1, 16_384), (2, 40_000)] {
        let want = data(len, 10 + n as u64);
        let obj = fx.seal_stdin(&format!("stdin-{n}"), &want, &[]);
        assert_eq!(obj[7], 1, "flag 01");
        reads_back(&home, &obj, None, &want);
        let obj = fx.seal_stdin(&format!("stdin-kms-{n}"), &want, &["--sse", "kms"]);
        reads_back(&home, &obj, None, &want);
    }

    // SSE-KMS: the default key, a caller context, a bucket key, another key,
    // and the default key after a rotation.
    let kms_big = fx.seal("kbig.bin", &big, &["--sse", "kms"]);
    let kms_empty = fx.seal("kempty.bin", b"", &["--sse", "kms"]);
    let kms_ctx = fx.seal(
        "kctx.bin",
        &small,
        &[
            "--sse",
            "kms",
            "--context",
            "team=data",
            "--context",
            "dept=eng",
            "--bucket",
            "photos",
            "--key",
            "2026/a b.txt",
        ],
    );
    let kms_bk = fx.seal(
        "kbk.bin",
        &big,
        &["--sse", "kms", "--bucket-key", "--context", "dept=eng"],
    );
    fx.cli(&["kms", "create-key", "--alias", "alias/second"]);
    let kms_second = fx.seal(
        "k2.bin",
        &exact,
        &["--sse", "kms", "--kms-key", "alias/second"],
    );
    fx.cli(&["kms", "rotate", "alias/objseal"]);
    let kms_rotated = fx.seal("krot.bin", &big, &["--sse", "kms"]);

    let object_arn = |k: &str| ("aws:s3:arn", format!("arn:aws:s3:::local/{k}"));
    let o = reads_back(&home, &kms_big, None, &big);
    assert_eq!((o.mode, o.key_version, o.bucket_key), (2, 1, false));
    let (k, v) = object_arn("kbig.bin");
    assert_eq!(o.context, pairs(&[(k, &v)]), "the default context");
    let default_arn = o.key_id.clone();
    assert!(default_arn.starts_with("arn:aws:kms:local-1:000000000000:key/"));
    let o = reads_back(&home, &kms_empty, None, b"");
    let (k, v) = object_arn("kempty.bin");
    assert_eq!(o.context, pairs(&[(k, &v)]));
    let o = reads_back(&home, &kms_ctx, None, &small);
    assert_eq!(
        o.context,
        pairs(&[
            ("aws:s3:arn", "arn:aws:s3:::photos/2026/a b.txt"),
            ("dept", "eng"),
            ("team", "data"),
        ])
    );
    let o = reads_back(&home, &kms_bk, None, &big);
    assert!(o.bucket_key);
    assert_eq!(
        o.context,
        pairs(&[("aws:s3:arn", "arn:aws:s3:::local"), ("dept", "eng")])
    );
    let o = reads_back(&home, &kms_second, None, &exact);
    assert_ne!(o.key_id, default_arn);
    let o = reads_back(&home, &kms_rotated, None, &big);
    assert_eq!(
        (o.key_id.as_str(), o.key_version),
        (default_arn.as_str(), 2)
    );

    // SSE-C from a key file of 32 raw bytes.
    let ck: [u8; 32] = data(32, 7).try_into().unwrap();
    let key_file = fx.key_file("customer.key", &ck);
    let kf = key_file.to_str().unwrap();
    let c_big = fx.seal("cbig.bin", &big, &["--sse", "c", "--customer-key-file", kf]);
    let c_empty = fx.seal(
        "cempty.bin",
        b"",
        &["--sse", "c", "--customer-key-file", kf],
    );
    let o = reads_back(&home, &c_big, Some(&ck), &big);
    assert_eq!((o.mode, o.key_id.as_str(), o.key_version), (3, "", 0));
    reads_back(&home, &c_empty, Some(&ck), b"");

    // Members this document does not list are ignored: a copy of the home
    // with extra members everywhere still opens SSE-S3 and SSE-KMS objects.
    let copy = fx.path("home-copy");
    std::fs::create_dir_all(copy.join("kms")).unwrap();
    for file in ["keyring.json", "kms/keys.json"] {
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(home.join(file)).unwrap()).unwrap();
        v["generation"] = 7.into();
        v["pending_audit"] = Value::Null;
        for list in ["versions", "keys"] {
            for item in v[list].as_array_mut().into_iter().flatten() {
                item["future"] = "x".into();
                for ver in item["versions"].as_array_mut().into_iter().flatten() {
                    ver["future"] = true.into();
                }
            }
        }
        std::fs::write(copy.join(file), serde_json::to_vec(&v).unwrap()).unwrap();
    }
    reads_back(&copy, &s3_exact, None, &exact);
    reads_back(&copy, &kms_rotated, None, &big);
    reads_back(&copy, &kms_bk, None, &big);

    // The reader is a real check, not a pass-through: a wrong customer key
    // fails at the key check, a flipped commitment byte before any chunk,
    // and a flipped ciphertext byte at its chunk's tag.
    let wrong = [0x5a; 32];
    let e = open_object(&home, &c_big, Some(&wrong)).unwrap_err();
    assert!(e.contains("key check"), "{e}");
    let (_, head) = parse_envelope(&s3_big).unwrap();
    let mut bad = s3_big.clone();
    bad[head + 30] ^= 1;
    let e = open_object(&home, &bad, None).unwrap_err();
    assert!(e.contains("commitment"), "{e}");
    let mut bad = kms_big.clone();
    let last = bad.len() - 20;
    bad[last] ^= 1;
    let e = open_object(&home, &bad, None).unwrap_err();
    assert!(e.contains("tag"), "{e}");
}

#[test]
fn multipart_objects_from_the_library_open_from_the_home_alone() {
    use objseal::sse::{CompletedPart, MultipartUpload};
    use objseal::{CustomerKey, EncryptionContext, Engine, Keyring, LocalKms};
    use objseal::{ObjectBinding, OpenWith, SealMode};

    let fx = Fixture::new();
    let home = fx.home();
    fx.cli(&["keys", "list"]); // creates the store
    let engine = Engine::builder()
        .keyring(Arc::new(Keyring::open(home.join("keyring.json")).unwrap()))
        .kms(Arc::new(
            LocalKms::open(home.join("kms"), "local-1", "000000000000").unwrap(),
        ))
        .principal("format-test")
        .build();
    let binding = ObjectBinding::new("bucket", "multi/part").unwrap();

    /// Uploads `parts` (number, plaintext) in reverse order and completes
    /// them in the list's order; returns the stored object and plaintext.
    fn upload(
        engine: &Engine,
        binding: &ObjectBinding,
        mode: &SealMode<'_>,
        with: OpenWith<'_>,
        parts: &[(u32, Vec<u8>)],
    ) -> (Vec<u8>, Vec<u8>) {
        let up = MultipartUpload::create(engine, mode, binding).unwrap();
        let sealer = up.sealer(engine, with).unwrap();
        let sealed: Vec<_> = parts
            .iter()
            .rev()
            .map(|(n, p)| sealer.seal(*n, p).unwrap())
            .collect();
        let records: Vec<_> = sealed.iter().map(|s| s.record.clone()).collect();
        let requested: Vec<_> = parts
            .iter()
            .map(|(n, _)| CompletedPart {
                number: *n,
                etag: records
                    .iter()
                    .find(|r| r.number == *n)
                    .unwrap()
                    .etag
                    .clone(),
            })
            .collect();
        let done = up.complete(engine, with, &requested, &records).unwrap();
        let mut object = done.envelope.encode().unwrap();
        for n in &done.order {
            let s = sealed.iter().find(|s| s.record.number == *n).unwrap();
            object.extend_from_slice(&s.body);
        }
        let plain = parts.iter().flat_map(|(_, p)| p.clone()).collect();
        (object, plain)
    }

    // Gaps in the numbers, an empty part in the middle, a multi-chunk part.
    let mixed = vec![
        (2, data(40_000, 11)),
        (3, Vec::new()),
        (7, data(70_000, 12)),
        (9, data(5, 13)),
    ];
    let all_empty = vec![(1, Vec::new())];
    let ctx = EncryptionContext::new().with("dept", "eng").unwrap();
    let ck = CustomerKey::from_bytes(data(32, 14).try_into().unwrap());
    let ck_bytes = *ck.expose_secret();
    let managed = OpenWith::Managed;
    /// How to seal, how to open, the reader's customer key, the parts.
    type Case<'a> = (
        SealMode<'a>,
        OpenWith<'a>,
        Option<&'a [u8; 32]>,
        &'a [(u32, Vec<u8>)],
    );
    let cases: Vec<Case<'_>> = vec![
        (SealMode::S3, managed, None, &mixed),
        (SealMode::S3, managed, None, &all_empty),
        (SealMode::kms("alias/objseal"), managed, None, &mixed),
        (
            SealMode::kms("alias/objseal")
                .with_context(&ctx)
                .with_bucket_key(true),
            managed,
            None,
            &mixed,
        ),
        (
            SealMode::C(&ck),
            OpenWith::Customer(&ck),
            Some(&ck_bytes),
            &mixed,
        ),
        (
            SealMode::C(&ck),
            OpenWith::Customer(&ck),
            Some(&ck_bytes),
            &all_empty,
        ),
    ];
    for (mode, with, key, parts) in &cases {
        let (object, plain) = upload(&engine, &binding, mode, *with, parts);
        let o = reads_back(&home, &object, *key, &plain);
        assert_eq!(o.mode, mode.mode().id());
        let numbers: Vec<u32> = parts.iter().map(|(n, _)| *n).collect();
        assert_eq!(o.parts, numbers);
        // The first two part bodies swapped: the reader's MAC check fails.
        if numbers.len() > 1 {
            let mut swapped = object.clone();
            let (_, head) = parse_envelope(&object).unwrap();
            swapped.truncate(head);
            let bodies = &object[head..];
            let first = sealed_len(parts[0].1.len() as u64) as usize;
            let second = sealed_len(parts[1].1.len() as u64) as usize;
            swapped.extend_from_slice(&bodies[first..first + second]);
            swapped.extend_from_slice(&bodies[..first]);
            swapped.extend_from_slice(&bodies[first + second..]);
            let e = open_object(&home, &swapped, *key).unwrap_err();
            assert!(e.contains("MAC"), "{e}");
        }
    }
}

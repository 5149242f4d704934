//! The on-disk layout of the gateway's data directory.
//!
//! ```text
//! DATA/buckets/NAME/bucket.json          owner, creation time, encryption settings
//! DATA/buckets/NAME/bucket.json.lock     lock taken while bucket.json is replaced
//! DATA/buckets/NAME/objects/HH/HASH.obj  one object: header, sealed object, metadata
//! DATA/buckets/NAME/uploads/ID/          a multipart upload in progress
//! ```
//!
//! `HASH` is the hex SHA-256 of the object key, `HH` its first two digits:
//! no key, whatever its bytes, can name a path outside its bucket, and file
//! names stay short. Each object file is
//!
//! ```text
//! "OSGWOBJ2" | u64 LE body length | u64 LE envelope length | u64 LE metadata length
//! body      (the sealed body; for a multipart object, the part bodies in order)
//! envelope  (the objseal envelope: mode, wrapped data key, part list)
//! metadata  (JSON: key, plaintext size, ETag, content headers, x-amz-meta-*)
//! ```
//!
//! A part of a multipart upload in progress is stored the same way under
//! `uploads/ID/PART.part`, its record (length, ETag, body header) as the
//! metadata and no envelope; the upload's creation envelope and headers are
//! in `uploads/ID/upload.json`.
//!
//! written to an anonymous temporary file beside its destination, fsynced
//! and renamed over it ([`objseal::fs::StagedFile`]): a crash leaves the old
//! object or the new one, and concurrent writers of one key end with one
//! complete object (the last rename).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Magic at the start of every object file.
pub const OBJECT_MAGIC: &[u8; 8] = b"OSGWOBJ2";
/// Length of the object file header (magic; body, envelope and metadata lengths).
pub const HEADER_LEN: u64 = 32;
/// The largest metadata block read back.
const MAX_META_LEN: u64 = 1 << 20;

/// What is kept beside a sealed object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The object key.
    pub key: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// The quoted ETag.
    pub etag: String,
    /// Last modification, milliseconds since the Unix epoch.
    pub last_modified_ms: u64,
    /// `Content-Type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// `Cache-Control`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    /// `Expires`, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-*` (names without the prefix, lower case).
    #[serde(default)]
    pub user_meta: BTreeMap<String, String>,
    /// The number of parts of a multipart object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
    /// Plaintext size of each part of a multipart object, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub part_sizes: Vec<u64>,
    /// The SSE mode (`AES256`, `aws:kms`, `SSE-C`), for listings.
    #[serde(default)]
    pub sse: String,
}

/// Settings of one bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketMeta {
    /// The user that created the bucket.
    pub owner: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Default encryption: `AES256` or `aws:kms`.
    pub sse_algorithm: String,
    /// Default KMS key for `aws:kms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The Bucket Key flag.
    #[serde(default)]
    pub bucket_key: bool,
    /// Whether SSE-C writes are blocked.
    pub sse_c_blocked: bool,
    /// Whether an encryption configuration was put explicitly.
    #[serde(default)]
    pub configured: bool,
}

impl BucketMeta {
    /// The library's view of the bucket's encryption rules.
    pub fn encryption(&self) -> objseal::sse::BucketEncryption {
        use objseal::sse::BucketEncryption;
        let base = if self.sse_algorithm == "aws:kms" {
            BucketEncryption::sse_kms(self.kms_key_id.as_deref())
        } else {
            BucketEncryption::sse_s3()
        };
        let base = base.with_bucket_key(self.bucket_key);
        if self.sse_c_blocked {
            base.block(objseal::Mode::SseC)
        } else {
            base.allow_sse_c()
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `name` is a bucket name this store accepts (S3's rules: 3 to 63
/// of `a-z 0-9 . -`, starting and ending with a letter or digit). Checked
/// again here so that no name can reach outside the data directory.
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'.' || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// The data directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An I/O error with the path it concerns.
pub fn io_at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Random hex of `n` bytes.
pub fn random_hex(n: usize) -> io::Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(hex(&buf))
}

/// Creates `dir` (and parents), private to the owner.
pub fn create_dir_private(dir: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| io_at(dir, e))
}

impl Store {
    /// The store in `root` (created if missing).
    pub fn open(root: &Path) -> io::Result<Store> {
        create_dir_private(&root.join("buckets"))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// Removes what writers that died left behind (where temporary files
    /// are not anonymous, i.e. not on Linux): stale `.objseal-*.tmp` files
    /// in every object and upload directory, and half-made or half-deleted
    /// bucket directories. Run once at start. Returns the files removed.
    pub fn sweep(&self) -> io::Result<usize> {
        let mut removed = 0;
        for bucket in read_dir_or_empty(&self.buckets_dir())? {
            let name = bucket.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with(".tmp-bucket-") || name.starts_with(".trash-") {
                // Left by a writer that died (not one at work right now).
                let old = fs::metadata(&bucket)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 60);
                if old {
                    let _ = fs::remove_dir_all(&bucket);
                }
                continue;
            }
            if !bucket.is_dir() {
                continue;
            }
            let mut dirs = read_dir_or_empty(&bucket.join("objects"))?;
            dirs.extend(read_dir_or_empty(&bucket.join("uploads"))?);
            dirs.push(bucket.clone());
            for dir in dirs.into_iter().filter(|d| d.is_dir()) {
                removed += objseal::fs::remove_stale_temp_files(&dir).map_err(lib_io)?;
            }
        }
        Ok(removed)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn buckets_dir(&self) -> PathBuf {
        self.root.join("buckets")
    }

    /// The directory of bucket `name` (which must be valid).
    pub fn bucket_dir(&self, name: &str) -> PathBuf {
        self.buckets_dir().join(name)
    }

    /// Reads a bucket's settings; `None` if it does not exist.
    pub fn bucket(&self, name: &str) -> io::Result<Option<BucketMeta>> {
        if !valid_bucket_name(name) {
            return Ok(None);
        }
        let path = self.bucket_dir(name).join("bucket.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io_at(&path, io::Error::new(io::ErrorKind::InvalidData, e))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_at(&path, e)),
        }
    }

    /// Every bucket, by name.
    pub fn buckets(&self) -> io::Result<Vec<(String, BucketMeta)>> {
        let dir = self.buckets_dir();
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io_at(&dir, e))? {
            let entry = entry.map_err(|e| io_at(&dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Some(meta) = self.bucket(&name)? {
                out.push((name, meta));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Creates bucket `name`; `Ok(false)` if it exists already. The bucket
    /// appears complete or not at all (made in a temporary directory, then
    /// renamed).
    pub fn create_bucket(&self, name: &str, meta: &BucketMeta) -> io::Result<bool> {
        let dst = self.bucket_dir(name);
        if dst.exists() {
            return Ok(false);
        }
        let tmp = self
            .buckets_dir()
            .join(format!(".tmp-bucket-{}", random_hex(8)?));
        create_dir_private(&tmp.join("objects"))?;
        create_dir_private(&tmp.join("uploads"))?;
        write_atomic(&tmp.join("bucket.json"), &to_json(meta)?)?;
        match fs::rename(&tmp, &dst) {
            Ok(()) => Ok(true),
            Err(_) if dst.exists() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(false)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(io_at(&dst, e))
            }
        }
    }

    /// Replaces a bucket's settings with `f` applied to them, under the
    /// bucket's lock, on the settings re-read under it.
    pub fn update_bucket(
        &self,
        name: &str,
        f: impl FnOnce(&mut BucketMeta),
    ) -> io::Result<Option<BucketMeta>> {
        let dir = self.bucket_dir(name);
        if !valid_bucket_name(name) || !dir.is_dir() {
            return Ok(None);
        }
        let _lock = objseal::fs::FileLock::acquire(&dir.join("bucket.json.lock"))
            .map_err(|e| io::Error::other(e.to_string()))?;
        let Some(mut meta) = self.bucket(name)? else {
            return Ok(None);
        };
        f(&mut meta);
        write_atomic(&dir.join("bucket.json"), &to_json(&meta)?)?;
        Ok(Some(meta))
    }

    /// Whether the bucket holds no object.
    pub fn bucket_is_empty(&self, name: &str) -> io::Result<bool> {
        let objects = self.bucket_dir(name).join("objects");
        for fan in read_dir_or_empty(&objects)? {
            for f in read_dir_or_empty(&fan)? {
                if f.extension().is_some_and(|e| e == "obj") {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Removes bucket `name` (which the caller checked is empty): renamed
    /// away first, so it disappears at once, then deleted.
    pub fn delete_bucket(&self, name: &str) -> io::Result<()> {
        let dir = self.bucket_dir(name);
        let trash = self
            .buckets_dir()
            .join(format!(".trash-{}", random_hex(8)?));
        fs::rename(&dir, &trash).map_err(|e| io_at(&dir, e))?;
        fs::remove_dir_all(&trash).map_err(|e| io_at(&trash, e))
    }

    /// Where object `key` of `bucket` is stored.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        let h = hex(&Sha256::digest(key.as_bytes()));
        self.bucket_dir(bucket)
            .join("objects")
            .join(&h[..2])
            .join(format!("{h}.obj"))
    }

    /// Every object file of `bucket`.
    pub fn object_files(&self, bucket: &str) -> io::Result<Vec<PathBuf>> {
        let objects = self.bucket_dir(bucket).join("objects");
        let mut out = Vec::new();
        for fan in read_dir_or_empty(&objects)? {
            for f in read_dir_or_empty(&fan)? {
                if f.extension().is_some_and(|e| e == "obj") {
                    out.push(f);
                }
            }
        }
        Ok(out)
    }

    /// Every object of `bucket` (key and metadata), sorted by key. Files
    /// that vanish while listed are skipped.
    pub fn list_objects(&self, bucket: &str, prefix: &str) -> io::Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        for path in self.object_files(bucket)? {
            match read_object_file(&path) {
                Ok(Some(obj)) if obj.meta.key.starts_with(prefix) => out.push(obj.meta),
                Ok(_) => {}
                Err(e) => eprintln!("objseal serve: skipping {}: {e}", path.display()),
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The directory of multipart upload `id` of `bucket`.
    pub fn upload_dir(&self, bucket: &str, id: &str) -> PathBuf {
        self.bucket_dir(bucket).join("uploads").join(id)
    }
}

/// Entries of `dir`; none if it does not exist.
pub fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(rd) => {
            let mut out = Vec::new();
            for e in rd {
                out.push(e.map_err(|e| io_at(dir, e))?.path());
            }
            Ok(out)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_at(dir, e)),
    }
}

/// `value` as JSON.
pub fn to_json<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

/// Writes `bytes` to `path` atomically (staged file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let staged = objseal::fs::StagedFile::create(path).map_err(lib_io)?;
    staged.file().write_all(bytes).map_err(|e| io_at(path, e))?;
    staged.commit().map_err(lib_io)
}

/// An objseal error as an [`io::Error`] (`objseal::Error::from` gives it back).
pub fn lib_io(e: objseal::Error) -> io::Error {
    io::Error::other(e)
}

/// An object file opened for reading.
#[derive(Debug)]
pub struct ObjectFile {
    /// The open file.
    pub file: File,
    /// Where the body starts.
    pub body_start: u64,
    /// The body's length.
    pub body_len: u64,
    /// The object's envelope.
    pub envelope: objseal::Envelope,
    /// The metadata.
    pub meta: ObjectMeta,
}

/// Opens the object (or part) file at `path`; `None` if there is none.
pub fn read_object_file(path: &Path) -> io::Result<Option<ObjectFile>> {
    let Some((file, body_len, env, meta)) = read_sections(path)? else {
        return Ok(None);
    };
    let envelope = objseal::Envelope::parse(&env).map_err(|_| {
        io_at(
            path,
            io::Error::new(io::ErrorKind::InvalidData, "damaged envelope"),
        )
    })?;
    let meta: ObjectMeta = serde_json::from_slice(&meta).map_err(|_| {
        io_at(
            path,
            io::Error::new(io::ErrorKind::InvalidData, "damaged object metadata"),
        )
    })?;
    Ok(Some(ObjectFile {
        file,
        body_start: HEADER_LEN,
        body_len,
        envelope,
        meta,
    }))
}

/// A stored file's sections: the file (positioned at the body), the
/// body's length, the envelope section and the metadata section.
pub type Sections = (File, u64, Vec<u8>, Vec<u8>);

/// Reads the sections of a stored file: the file (positioned at the
/// body), the body's length, the envelope section and the metadata section.
pub fn read_sections(path: &Path) -> io::Result<Option<Sections>> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path, e)),
    };
    let total = file.metadata().map_err(|e| io_at(path, e))?.len();
    let bad = |what: &str| {
        io_at(
            path,
            io::Error::new(io::ErrorKind::InvalidData, what.to_owned()),
        )
    };
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut header).map_err(|e| io_at(path, e))?;
    if &header[..8] != OBJECT_MAGIC {
        return Err(bad("not an object file"));
    }
    let field = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or_default());
    let (body_len, env_len, meta_len) = (field(8), field(16), field(24));
    if env_len > MAX_META_LEN
        || meta_len > MAX_META_LEN
        || HEADER_LEN
            .checked_add(body_len)
            .and_then(|n| n.checked_add(env_len))
            .and_then(|n| n.checked_add(meta_len))
            != Some(total)
    {
        return Err(bad("damaged object header"));
    }
    file.seek(SeekFrom::Start(HEADER_LEN + body_len))
        .map_err(|e| io_at(path, e))?;
    let mut env = vec![0u8; env_len as usize];
    file.read_exact(&mut env).map_err(|e| io_at(path, e))?;
    let mut meta = vec![0u8; meta_len as usize];
    file.read_exact(&mut meta).map_err(|e| io_at(path, e))?;
    file.seek(SeekFrom::Start(HEADER_LEN))
        .map_err(|e| io_at(path, e))?;
    Ok(Some((file, body_len, env, meta)))
}

/// Finishes a stored file whose body (`body_len` bytes) was written after
/// the header placeholder: appends the envelope section `env` and the
/// metadata section `meta`, then fills in the header.
pub fn finish_sections(file: &File, body_len: u64, env: &[u8], meta: &[u8]) -> io::Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(HEADER_LEN + body_len))?;
    f.write_all(env)?;
    f.write_all(meta)?;
    let mut header = [0u8; HEADER_LEN as usize];
    header[..8].copy_from_slice(OBJECT_MAGIC);
    header[8..16].copy_from_slice(&body_len.to_le_bytes());
    header[16..24].copy_from_slice(&(env.len() as u64).to_le_bytes());
    header[24..32].copy_from_slice(&(meta.len() as u64).to_le_bytes());
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&header)?;
    Ok(())
}

/// [`finish_sections`] for an object: its envelope and metadata.
pub fn finish_object_file(
    file: &File,
    body_len: u64,
    env: &objseal::Envelope,
    meta: &ObjectMeta,
) -> io::Result<()> {
    let env = env.encode().map_err(lib_io)?;
    finish_sections(file, body_len, &env, &to_json(meta)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_stay_inside_the_data_directory() {
        for bad in [
            "..", ".", "a/b", "../etc", "ab", "Abc", "-abc", "abc-", "a..b", "",
        ] {
            assert!(!valid_bucket_name(bad), "{bad:?}");
        }
        for good in ["abc", "my-bucket.2026", "0ab"] {
            assert!(valid_bucket_name(good), "{good:?}");
        }
    }

    #[test]
    fn object_paths_are_hashes_under_the_bucket() {
        let store = Store {
            root: PathBuf::from("/data"),
        };
        for key in [
            "../../etc/passwd",
            "/abs",
            "a\0b",
            &"k".repeat(1024),
            ".",
            "",
        ] {
            let p = store.object_path("bkt", key);
            assert!(p.starts_with("/data/buckets/bkt/objects"), "{p:?}");
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(name.len(), 64 + 4);
            assert!(name[..64].bytes().all(|c| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn damaged_object_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.obj");
        for bytes in [
            &b""[..],
            &b"OSGWOBJ2"[..],
            &[
                b'O', b'S', b'G', b'W', b'O', b'B', b'J', b'2', 255, 255, 255, 255, 255, 255, 255,
                255,
            ][..],
        ] {
            std::fs::write(&p, bytes).unwrap();
            assert!(read_object_file(&p).is_err());
        }
        let mut header = OBJECT_MAGIC.to_vec();
        for n in [u64::MAX, 1, 1] {
            header.extend_from_slice(&n.to_le_bytes());
        }
        std::fs::write(&p, &header).unwrap();
        assert!(read_object_file(&p).is_err());
        assert!(
            read_object_file(&dir.path().join("missing"))
                .unwrap()
                .is_none()
        );
    }
}

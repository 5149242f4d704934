//! PutBucketEncryption and GetBucketEncryption with the bucket's blocked
//! encryption types (`BlockedEncryptionTypes`, which s3s 0.14's types do not
//! carry): handled as a custom route, after s3s checked the signature.

use bytes::Bytes;
use http::{Extensions, HeaderMap, Method, Uri};
use s3s::route::S3Route;
use s3s::{Body, S3Request, S3Response, S3Result, s3_error};
use sha2::{Digest, Sha256};

use super::{Gateway, blocking, convert, io_err};
use crate::body::hex;

/// The custom route for `PUT`/`GET /BUCKET?encryption`, over either store.
#[derive(Debug, Clone)]
pub enum EncryptionRoute {
    /// The local data directory.
    Local(Gateway),
    /// An upstream S3 store.
    Upstream(crate::upstream::UpstreamGateway),
}

const MAX_XML: usize = 64 << 10;

fn bucket_of(path: &str) -> Option<&str> {
    let p = path.strip_prefix('/')?;
    let p = p.strip_suffix('/').unwrap_or(p);
    (!p.is_empty() && !p.contains('/')).then_some(p)
}

fn has_encryption_param(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.split('=').next() == Some("encryption"))
    })
}

/// The texts of every `<tag>…</tag>` in `xml` (no attributes expected).
fn texts<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].trim());
        rest = &after[j + close.len()..];
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn malformed() -> s3s::S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

/// A bucket's encryption settings as PutBucketEncryption gives them.
struct Rule {
    algorithm: String,
    kms_key: Option<String>,
    bucket_key: bool,
    /// `Some(blocked)` when the rule lists blocked types.
    sse_c_blocked: Option<bool>,
}

fn parse_rule(xml: &str) -> S3Result<Rule> {
    if !xml.contains("<ServerSideEncryptionConfiguration") || texts(xml, "Rule").len() != 1 {
        return Err(malformed());
    }
    let algorithm = match texts(xml, "SSEAlgorithm").as_slice() {
        [a] => unescape(a),
        _ => return Err(malformed()),
    };
    let kms_key = match texts(xml, "KMSMasterKeyID").as_slice() {
        [] => None,
        [""] => None,
        [k] => Some(unescape(k)),
        _ => return Err(malformed()),
    };
    let bucket_key = match texts(xml, "BucketKeyEnabled").as_slice() {
        [] => false,
        [v] if v.eq_ignore_ascii_case("true") => true,
        [v] if v.eq_ignore_ascii_case("false") => false,
        _ => return Err(malformed()),
    };
    let sse_c_blocked = if xml.contains("<BlockedEncryptionTypes>") {
        let types = texts(xml, "EncryptionType");
        if types.iter().any(|t| *t != "SSE-C" && *t != "NONE") {
            return Err(malformed());
        }
        Some(types.contains(&"SSE-C"))
    } else {
        None
    };
    objseal::sse::BucketEncryption::from_default_rule(&algorithm, kms_key.as_deref(), bucket_key)
        .map_err(convert)?;
    Ok(Rule {
        algorithm,
        kms_key,
        bucket_key,
        sse_c_blocked,
    })
}

#[async_trait::async_trait]
impl S3Route for EncryptionRoute {
    fn is_match(
        &self,
        method: &Method,
        uri: &Uri,
        _headers: &HeaderMap,
        _extensions: &mut Extensions,
    ) -> bool {
        (method == Method::PUT || method == Method::GET)
            && bucket_of(uri.path()).is_some()
            && has_encryption_param(uri.query())
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let user = match self {
            EncryptionRoute::Local(gw) => gw.caller(&req)?,
            EncryptionRoute::Upstream(gw) => gw.caller(&req)?,
        };
        let bucket = bucket_of(req.uri.path())
            .map(str::to_owned)
            .ok_or_else(|| s3_error!(NoSuchBucket))?;
        let meta = match self {
            EncryptionRoute::Local(gw) => gw.owned_bucket(&bucket, &user).await?,
            EncryptionRoute::Upstream(gw) => gw.owned_bucket(&bucket, &user).await?,
        };
        if req.method == Method::GET {
            let mut rule = format!(
                "<ApplyServerSideEncryptionByDefault><SSEAlgorithm>{}</SSEAlgorithm>",
                escape(&meta.sse_algorithm)
            );
            if let Some(k) = &meta.kms_key_id {
                rule.push_str(&format!("<KMSMasterKeyID>{}</KMSMasterKeyID>", escape(k)));
            }
            rule.push_str("</ApplyServerSideEncryptionByDefault>");
            rule.push_str(&format!(
                "<BucketKeyEnabled>{}</BucketKeyEnabled>",
                meta.bucket_key
            ));
            rule.push_str(&format!(
                "<BlockedEncryptionTypes><EncryptionType>{}</EncryptionType></BlockedEncryptionTypes>",
                if meta.sse_c_blocked { "SSE-C" } else { "NONE" }
            ));
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ServerSideEncryptionConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>{rule}</Rule></ServerSideEncryptionConfiguration>"
            );
            let mut resp = S3Response::new(Body::from(xml));
            resp.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/xml"),
            );
            return Ok(resp);
        }
        let body: Bytes = req
            .input
            .store_all_limited(MAX_XML)
            .await
            .map_err(|_| malformed())?;
        // The signature covers the payload's hash; check the payload.
        if let Some(h) = req
            .headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            && h.len() == 64
            && !h.eq_ignore_ascii_case(&hex(&Sha256::digest(&body)))
        {
            let mut e = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            return Err(e);
        }
        let xml = std::str::from_utf8(&body).map_err(|_| malformed())?;
        let rule = parse_rule(xml)?;
        let apply = move |m: &mut crate::store::BucketMeta| {
            m.sse_algorithm = rule.algorithm;
            m.kms_key_id = rule.kms_key;
            m.bucket_key = rule.bucket_key;
            m.configured = true;
            if let Some(b) = rule.sse_c_blocked {
                m.sse_c_blocked = b;
            }
        };
        match self {
            EncryptionRoute::Local(gw) => {
                let store = gw.inner.store.clone();
                blocking(move || {
                    store
                        .update_bucket(&bucket, apply)
                        .map_err(io_err)?
                        .ok_or_else(|| s3_error!(NoSuchBucket))
                })
                .await?;
            }
            EncryptionRoute::Upstream(gw) => {
                let mut meta = meta;
                apply(&mut meta);
                gw.save_bucket(&bucket, &meta).await?;
            }
        }
        Ok(S3Response::new(Body::empty()))
    }
}

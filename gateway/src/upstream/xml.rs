//! The XML answers of the upstream store: a small bounded parser and the
//! extraction of each answer's fields, as the client ([`super::client`])
//! reads them.
//!
//! Self-contained (std, quick-xml and percent-encoding only; no paths into
//! the rest of the crate): the `upstream_records` fuzz target includes this
//! file by path, so what it fuzzes is the code the client runs.
//!
//! The extraction functions return the reason as a `String` on failure; the
//! client turns it into an `InvalidUpstreamResponse` error naming the request.

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key.
    pub key: String,
    /// Size as stored upstream.
    pub size: u64,
    /// The upstream ETag, quoted as S3 sends it.
    pub etag: String,
    /// LastModified as sent (RFC 3339, e.g. `2026-12-01T10:00:00.000Z`).
    pub last_modified: String,
}

/// A page of ListObjectsV2.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects.
    pub contents: Vec<Listed>,
    /// Common prefixes (with a delimiter).
    pub common_prefixes: Vec<String>,
    /// More follow.
    pub is_truncated: bool,
    /// Token for the next page.
    pub next_continuation_token: Option<String>,
}

/// One part of ListParts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedPart {
    /// Part number.
    pub number: u32,
    /// Size as stored upstream.
    pub size: u64,
    /// The upstream ETag, quoted.
    pub etag: String,
    /// LastModified as sent.
    pub last_modified: String,
}

/// One upload of ListMultipartUploads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpload {
    /// Key.
    pub key: String,
    /// Upload id.
    pub upload_id: String,
    /// Initiated, as sent.
    pub initiated: String,
}

/// One page of ListParts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartsPage {
    /// The page's parts.
    pub parts: Vec<ListedPart>,
    /// `IsTruncated` is `true`.
    pub is_truncated: bool,
    /// A non-empty `NextPartNumberMarker`.
    pub next_marker: Option<String>,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadsPage {
    /// The page's uploads (at most the room given).
    pub uploads: Vec<ListedUpload>,
    /// Where the listing goes on (key marker decoded, upload id marker), when
    /// the page is truncated and the room was not filled.
    pub next: Option<(String, String)>,
}

/// An XML element: its local name, text and child elements.
#[derive(Debug, Default)]
pub struct Node {
    /// Local name.
    pub name: String,
    /// Text content (references resolved).
    pub text: String,
    /// Child elements, in order.
    pub children: Vec<Node>,
}

impl Node {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
    /// The children called `name`.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
    /// The text of the first child called `name`.
    pub fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).map(|c| c.text.clone())
    }
    /// The first descendant called `name` (depth first).
    pub fn find_deep(&self, name: &str) -> Option<&Node> {
        for c in &self.children {
            if c.name == name {
                return Some(c);
            }
            if let Some(n) = c.find_deep(name) {
                return Some(n);
            }
        }
        None
    }
}

/// Parses a (bounded) XML document into its root element.
pub fn parse_xml(body: &[u8]) -> Result<Node, String> {
    use quick_xml::events::Event;
    const MAX_DEPTH: usize = 32;
    let text = std::str::from_utf8(body).map_err(|_| "the XML is not UTF-8".to_owned())?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let name_of = |e: &quick_xml::events::BytesStart<'_>| {
        String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
    };
    loop {
        let event = reader.read_event().map_err(|e| format!("bad XML: {e}"))?;
        match event {
            Event::Start(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err("XML nested too deep".into());
                }
                stack.push(Node {
                    name: name_of(&e),
                    ..Node::default()
                });
            }
            Event::Empty(e) => {
                let node = Node {
                    name: name_of(&e),
                    ..Node::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced XML")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t
                        .xml10_content()
                        .map_err(|e| format!("bad XML text: {e}"))?;
                    top.text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    let s = t.decode().map_err(|e| format!("bad XML CDATA: {e}"))?;
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    if let Some(c) = r
                        .resolve_char_ref()
                        .map_err(|e| format!("bad XML reference: {e}"))?
                    {
                        top.text.push(c);
                    } else {
                        let name = r.decode().map_err(|e| format!("bad XML reference: {e}"))?;
                        let v = quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("unknown XML entity &{name};"))?;
                        top.text.push_str(v);
                    }
                }
            }
            Event::Eof => return Err("no XML element".into()),
            _ => {}
        }
    }
}

/// A `+`-as-space, percent-encoded value of an `encoding-type=url` answer.
pub fn url_decode(s: &str) -> Result<String, String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| format!("{s:?} does not decode to UTF-8"))
}

/// `"etag"` quoted, as S3 sends it.
pub fn quoted(etag: &str) -> String {
    let e = etag.trim();
    if e.starts_with('"') || e.starts_with("W/\"") {
        e.to_owned()
    } else {
        format!("\"{e}\"")
    }
}

/// Whether `body` is an XML document whose root is `<Error>` (an error
/// answer sent with a 200 status).
pub fn is_error(body: &[u8]) -> bool {
    parse_xml(body).is_ok_and(|root| root.name == "Error")
}

/// The non-empty `Code` and the `Message` of the `<Error>` of an XML
/// error answer (the root, else the first one nested), if there is one.
pub fn error_code_message(body: &[u8]) -> Option<(String, String)> {
    let root = parse_xml(body).ok()?;
    let err = if root.name == "Error" {
        Some(&root)
    } else {
        root.find_deep("Error")
    }?;
    let code = err.text_of("Code").unwrap_or_default();
    if code.is_empty() {
        return None;
    }
    let message = err.text_of("Message").unwrap_or_default();
    Some((code, message))
}

/// Whether the answer says its values are URL-encoded (`EncodingType=url`).
fn url_encoded(root: &Node) -> bool {
    root.text_of("EncodingType")
        .is_some_and(|t| t.eq_ignore_ascii_case("url"))
}

/// `s`, URL-decoded when `encoded`.
fn decode_if(encoded: bool, s: String) -> Result<String, String> {
    if encoded { url_decode(&s) } else { Ok(s) }
}

fn truncated(root: &Node) -> bool {
    root.text_of("IsTruncated")
        .is_some_and(|t| t.trim() == "true")
}

/// ListBuckets: (name, creation date as sent).
pub fn buckets(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let root = parse_xml(body)?;
    let mut out = Vec::new();
    if let Some(buckets) = root.child("Buckets") {
        for b in buckets.children("Bucket") {
            let name = b
                .text_of("Name")
                .ok_or_else(|| "a bucket without a name".to_owned())?;
            out.push((name, b.text_of("CreationDate").unwrap_or_default()));
        }
    }
    Ok(out)
}

/// ListObjectsV2, one page (keys and prefixes URL-decoded when the answer
/// says `EncodingType=url`); a truncated page needs a continuation token.
pub fn list_page(body: &[u8]) -> Result<ListPage, String> {
    let root = parse_xml(body)?;
    let encoded = url_encoded(&root);
    let mut page = ListPage::default();
    for c in root.children("Contents") {
        let key = c
            .text_of("Key")
            .ok_or_else(|| "an entry without a Key".to_owned())?;
        let size = c.text_of("Size").unwrap_or_default();
        let size = size
            .trim()
            .parse()
            .map_err(|_| format!("bad Size {size:?}"))?;
        page.contents.push(Listed {
            key: decode_if(encoded, key)?,
            size,
            etag: quoted(&c.text_of("ETag").unwrap_or_default()),
            last_modified: c.text_of("LastModified").unwrap_or_default(),
        });
    }
    for p in root.children("CommonPrefixes") {
        if let Some(prefix) = p.text_of("Prefix") {
            page.common_prefixes.push(decode_if(encoded, prefix)?);
        }
    }
    page.is_truncated = truncated(&root);
    page.next_continuation_token = root
        .text_of("NextContinuationToken")
        .filter(|t| !t.is_empty());
    if page.is_truncated && page.next_continuation_token.is_none() {
        return Err("truncated without a NextContinuationToken".into());
    }
    Ok(page)
}

/// ListParts, one page.
pub fn parts(body: &[u8]) -> Result<PartsPage, String> {
    let root = parse_xml(body)?;
    let mut page = PartsPage::default();
    for p in root.children("Part") {
        let num = |name: &str| -> Result<u64, String> {
            let t = p.text_of(name).unwrap_or_default();
            t.trim().parse().map_err(|_| format!("bad {name} {t:?}"))
        };
        let number =
            u32::try_from(num("PartNumber")?).map_err(|_| "PartNumber out of range".to_owned())?;
        page.parts.push(ListedPart {
            number,
            size: num("Size")?,
            etag: quoted(&p.text_of("ETag").unwrap_or_default()),
            last_modified: p.text_of("LastModified").unwrap_or_default(),
        });
    }
    page.is_truncated = truncated(&root);
    page.next_marker = root
        .text_of("NextPartNumberMarker")
        .filter(|m| !m.is_empty());
    Ok(page)
}

/// ListMultipartUploads, one page: at most `room` uploads (keys URL-decoded
/// when the answer says `EncodingType=url`; the uploads past `room` are not
/// read), and where the listing goes on when it is truncated and `room`
/// was not filled (a truncated page needs a `NextKeyMarker`).
pub fn uploads(body: &[u8], room: usize) -> Result<UploadsPage, String> {
    let root = parse_xml(body)?;
    let encoded = url_encoded(&root);
    let mut page = UploadsPage::default();
    for u in root.children("Upload") {
        if page.uploads.len() >= room {
            return Ok(page);
        }
        let key = u
            .text_of("Key")
            .ok_or_else(|| "an upload without a Key".to_owned())?;
        page.uploads.push(ListedUpload {
            key: decode_if(encoded, key)?,
            upload_id: u.text_of("UploadId").unwrap_or_default(),
            initiated: u.text_of("Initiated").unwrap_or_default(),
        });
    }
    if !truncated(&root) || page.uploads.len() >= room {
        return Ok(page);
    }
    // NextKeyMarker is encoded like the keys; the request takes it raw.
    let key = root.text_of("NextKeyMarker").filter(|k| !k.is_empty());
    let upload = root.text_of("NextUploadIdMarker").unwrap_or_default();
    match key {
        Some(k) => page.next = Some((decode_if(encoded, k)?, upload)),
        None => return Err("truncated without a NextKeyMarker".into()),
    }
    Ok(page)
}

/// CreateMultipartUpload: the (non-empty) upload id.
pub fn upload_id(body: &[u8]) -> Result<String, String> {
    parse_xml(body)?
        .text_of("UploadId")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| "no UploadId".to_owned())
}

/// The quoted `ETag` of a result document.
fn result_etag(body: &[u8]) -> Result<String, String> {
    let etag = parse_xml(body)?
        .text_of("ETag")
        .ok_or_else(|| "no ETag".to_owned())?;
    Ok(quoted(&etag))
}

/// CompleteMultipartUpload: the object's ETag (quoted).
pub fn complete_etag(body: &[u8]) -> Result<String, String> {
    result_etag(body)
}

/// CopyObject: the new ETag (quoted).
pub fn copy_etag(body: &[u8]) -> Result<String, String> {
    result_etag(body)
}

/// Fuzzing entry point (`fuzz/fuzz_targets/upstream_records.rs`): runs the
/// client's reading of one kind of upstream answer on `body` and discards
/// the result. `kind % 8`: 0 ListObjectsV2, 1 ListBuckets, 2 ListParts,
/// 3 ListMultipartUploads, 4 InitiateMultipartUpload,
/// 5 CompleteMultipartUpload, 6 CopyObject result, 7 an `<Error>` body.
/// Every kind first goes through the `<Error>`-in-a-200 check the client
/// makes. It is no API.
#[doc(hidden)]
pub fn fuzz_parse_xml(kind: u8, body: &[u8]) {
    use std::hint::black_box;
    if is_error(body) {
        black_box(error_code_message(body));
        return;
    }
    match kind % 8 {
        0 => drop(black_box(list_page(body))),
        1 => drop(black_box(buckets(body))),
        2 => drop(black_box(parts(body))),
        3 => drop(black_box(uploads(body, 10_000))),
        4 => drop(black_box(upload_id(body))),
        5 => drop(black_box(complete_etag(body))),
        6 => drop(black_box(copy_etag(body))),
        _ => drop(black_box(error_code_message(body))),
    }
}

"""Gateway A in upstream mode, as boto3 and the AWS CLI see it: put, get,
ranges, head, listings, copies and multipart uploads in SSE-S3, SSE-KMS (a
moto key by id, ARN and alias) and SSE-C, and the errors S3 answers."""

import os

import botocore
from boto3.s3.transfer import TransferConfig

from upstream_common import *  # noqa: F403
from upstream_common import (CHUNK, KMS_ALIAS, KMS_ARN, MiB, TMP, allow_sse_c, aws, check, check_sse_headers, client, done, eq,
                             expect_error, list_all_v2, md5_hex, payload, sse_c_key, sse_put_args, sse_read_args)

s3 = client()
B = "up-flows"
s3.create_bucket(Bucket=B)
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
check(B in names, f"ListBuckets shows {B}: {names}")
eq(s3.head_bucket(Bucket=B)["ResponseMetadata"]["HTTPStatusCode"], 200, "HeadBucket")
expect_error(lambda: s3.create_bucket(Bucket=B), "BucketAlreadyOwnedByYou", 409, "CreateBucket twice")
rule = s3.get_bucket_encryption(Bucket=B)["ServerSideEncryptionConfiguration"]["Rules"][0]
eq((rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], rule.get("BlockedEncryptionTypes", {}).get(
    "EncryptionType")), ("AES256", ["SSE-C"]), "a new bucket: SSE-S3 by default, SSE-C blocked")
expect_error(lambda: s3.put_object(Bucket=B, Key="blocked", Body=b"x", **sse_c_key("c")[1]), "AccessDenied", 403,
             "SSE-C PUT into a new bucket")
allow_sse_c(s3, B)

MODES = ["s3", "kms-id", "kms-arn", "kms-alias", "c"]
etags = {}  # key -> ETag of its PUT

# Put, get, head and ranges in every mode, over 7 chunks plus a tail.
N = 7 * CHUNK + 1234
RANGES = [
    ("bytes=0-0", 0, 0), ("bytes=0-99", 0, 99), (f"bytes={CHUNK - 1}-{CHUNK}", CHUNK - 1, CHUNK),
    (f"bytes={CHUNK}-{2 * CHUNK - 1}", CHUNK, 2 * CHUNK - 1), (f"bytes={CHUNK - 5}-{3 * CHUNK + 5}", CHUNK - 5, 3 * CHUNK + 5),
    (f"bytes={N - 1234}-", N - 1234, N - 1), ("bytes=-1", N - 1, N - 1), ("bytes=-1234", N - 1234, N - 1),
    (f"bytes=-{CHUNK + 1235}", N - CHUNK - 1235, N - 1), (f"bytes=100-{N + 5000}", 100, N - 1),
    (f"bytes={6 * CHUNK}-{6 * CHUNK}", 6 * CHUNK, 6 * CHUNK),
]
for mode in MODES:
    key = f"obj-{mode}"
    data = payload(key, N)
    r = s3.put_object(Bucket=B, Key=key, Body=data, ContentType=f"text/x-{mode}",
                      Metadata={"colour": mode, "two-words": "a b"}, **sse_put_args(mode))
    check_sse_headers(r, mode, f"PUT {mode}")
    etags[key] = r["ETag"]
    if mode == "s3":
        eq(r["ETag"], f'"{md5_hex(data)}"', "SSE-S3 ETag is the MD5 of the plaintext")
    else:
        check(r["ETag"] != f'"{md5_hex(data)}"', f"{mode}: ETag is not the MD5 of the plaintext")
    rd = sse_read_args(mode)
    g = s3.get_object(Bucket=B, Key=key, **rd)
    eq(g["Body"].read(), data, f"GET {mode} bytes")
    eq((g["ContentLength"], g["ContentType"], g["Metadata"], g["ETag"]),
       (N, f"text/x-{mode}", {"colour": mode, "two-words": "a b"}, r["ETag"]), f"GET {mode} headers")
    check_sse_headers(g, mode, f"GET {mode}")
    h = s3.head_object(Bucket=B, Key=key, **rd)
    eq((h["ContentLength"], h["ContentType"], h["Metadata"], h["ETag"]),
       (N, f"text/x-{mode}", {"colour": mode, "two-words": "a b"}, r["ETag"]), f"HEAD {mode} headers")
    check_sse_headers(h, mode, f"HEAD {mode}")
    for rng, a, b in RANGES:
        g = s3.get_object(Bucket=B, Key=key, Range=rng, **rd)
        eq(g["ResponseMetadata"]["HTTPStatusCode"], 206, f"{mode} {rng} status")
        eq(g["Body"].read(), data[a:b + 1], f"{mode} {rng} bytes")
        eq((g["ContentLength"], g["ContentRange"]), (b - a + 1, f"bytes {a}-{b}/{N}"), f"{mode} {rng} headers")
    expect_error(lambda: s3.get_object(Bucket=B, Key=key, Range=f"bytes={N}-", **rd),
                 "InvalidRange", 416, f"{mode} range past the end")

# Conditional requests.
e = etags["obj-s3"]
eq(s3.get_object(Bucket=B, Key="obj-s3", IfMatch=e)["ContentLength"], N, "GET If-Match the ETag")
expect_error(lambda: s3.get_object(Bucket=B, Key="obj-s3", IfMatch='"0123"'), "PreconditionFailed", 412,
             "GET If-Match another ETag")
expect_error(lambda: s3.get_object(Bucket=B, Key="obj-s3", IfNoneMatch=e), "304", 304, "GET If-None-Match the ETag")
expect_error(lambda: s3.head_object(Bucket=B, Key="obj-kms-id", IfMatch='"0123"'), "412", 412,
             "HEAD If-Match another ETag")
expect_error(lambda: s3.put_object(Bucket=B, Key="obj-s3", Body=b"x", IfNoneMatch="*"), "PreconditionFailed", 412,
             "PUT If-None-Match: * onto an existing key")
eq(s3.get_object(Bucket=B, Key="obj-s3")["ETag"], e, "the refused PUT changed nothing")
r = s3.put_object(Bucket=B, Key="fresh", Body=payload("fresh", 10), IfNoneMatch="*")
eq(s3.get_object(Bucket=B, Key="fresh")["Body"].read(), payload("fresh", 10), "PUT If-None-Match: * of a new key")
s3.delete_object(Bucket=B, Key="fresh")

# Bucket default (no SSE header): SSE-S3; the empty object.
r = s3.put_object(Bucket=B, Key="empty", Body=b"")
eq((r["ServerSideEncryption"], r["ETag"]), ("AES256", '"d41d8cd98f00b204e9800998ecf8427e"'), "empty PUT")
g = s3.get_object(Bucket=B, Key="empty")
eq((g["Body"].read(), g["ContentLength"]), (b"", 0), "empty GET")
eq(s3.head_object(Bucket=B, Key="empty")["ContentLength"], 0, "empty HEAD")
etags["empty"] = r["ETag"]
small = payload("small", 100)
r = s3.put_object(Bucket=B, Key="small", Body=small)
check_sse_headers(r, "default", "PUT without SSE headers")
etags["small"] = r["ETag"]

# Listings: v1 and v2, prefix and delimiter, pagination; plaintext sizes and
# the ETags of HEAD and PUT; nothing of .objseal/.
L = "up-list"
s3.create_bucket(Bucket=L)
allow_sse_c(s3, L)
lkeys = {"a/1": "s3", "a/2": "kms-alias", "a/b/3": "c", "b/1": "s3", "c": "kms-id", "d e": "s3",
         "z/\u00fcn\u00efcode": "s3"}
lsizes, letags = {}, {}
for i, (k, mode) in enumerate(sorted(lkeys.items())):
    body = payload(k, 1000 + 777 * i)
    r = s3.put_object(Bucket=L, Key=k, Body=body, **sse_put_args(mode))
    lsizes[k], letags[k] = len(body), r["ETag"]
    h = s3.head_object(Bucket=L, Key=k, **sse_read_args(mode))
    eq(h["ETag"], r["ETag"], f"HEAD ETag = PUT ETag ({k})")
keys = sorted(lkeys)
r = s3.list_objects_v2(Bucket=L)
eq([o["Key"] for o in r["Contents"]], keys, "ListObjectsV2 keys")
eq([o["Size"] for o in r["Contents"]], [lsizes[k] for k in keys], "ListObjectsV2 plaintext sizes")
eq([o["ETag"] for o in r["Contents"]], [letags[k] for k in keys], "ListObjectsV2 ETags = PUT/HEAD ETags")
eq((r["KeyCount"], r["IsTruncated"]), (len(keys), False), "ListObjectsV2 KeyCount")
r = s3.list_objects(Bucket=L)
eq([(o["Key"], o["Size"], o["ETag"]) for o in r["Contents"]], [(k, lsizes[k], letags[k]) for k in keys],
   "ListObjects (v1) keys, sizes, ETags")
r = s3.list_objects_v2(Bucket=L, Delimiter="/")
eq([p["Prefix"] for p in r.get("CommonPrefixes", [])], ["a/", "b/", "z/"], "V2 common prefixes (no .objseal/)")
eq([o["Key"] for o in r.get("Contents", [])], ["c", "d e"], "V2 top-level keys")
eq(r["KeyCount"], 5, "V2 KeyCount counts prefixes")
r = s3.list_objects(Bucket=L, Delimiter="/")
eq([p["Prefix"] for p in r.get("CommonPrefixes", [])], ["a/", "b/", "z/"], "V1 common prefixes (no .objseal/)")
r = s3.list_objects_v2(Bucket=L, Prefix="a/", Delimiter="/")
eq(([o["Key"] for o in r.get("Contents", [])], [p["Prefix"] for p in r.get("CommonPrefixes", [])]),
   (["a/1", "a/2"], ["a/b/"]), "V2 prefix a/ with delimiter")
r = s3.list_objects(Bucket=L, Prefix="a/b/")
eq([o["Key"] for o in r.get("Contents", [])], ["a/b/3"], "V1 prefix a/b/")
r = s3.list_objects_v2(Bucket=L, Prefix=".objseal")
eq((r["KeyCount"], r.get("Contents", [])), (0, []), "V2 prefix .objseal lists nothing")
r = s3.list_objects(Bucket=L, Prefix=".objseal/")
eq(r.get("Contents", []), [], "V1 prefix .objseal/ lists nothing")
# S3 returns at most MaxKeys entries a page ("fewer but never more").
r = s3.list_objects_v2(Bucket=L, MaxKeys=1)
eq(([o["Key"] for o in r.get("Contents", [])], r["KeyCount"], r["IsTruncated"]), (["a/1"], 1, True),
   "V2 MaxKeys=1: first page")
seen, token = [], None
for _ in range(20):
    kw = {"ContinuationToken": token} if token else {}
    r = s3.list_objects_v2(Bucket=L, MaxKeys=2, **kw)
    got = [o["Key"] for o in r.get("Contents", [])]
    check(len(got) <= 2 and r["KeyCount"] == len(got), f"V2 page of MaxKeys=2: {got}, KeyCount {r['KeyCount']}")
    seen += got
    if not r["IsTruncated"]:
        break
    token = r["NextContinuationToken"]
eq(seen, keys, "V2 pagination with MaxKeys=2")
seen, marker = [], ""
for _ in range(20):
    r = s3.list_objects(Bucket=L, MaxKeys=3, Marker=marker)
    seen += [o["Key"] for o in r.get("Contents", [])]
    if not r["IsTruncated"]:
        break
    marker = r.get("NextMarker") or r["Contents"][-1]["Key"]
eq(seen, keys, "V1 pagination with MaxKeys=3 and Marker")
seen, marker = [], ""
for _ in range(20):
    r = s3.list_objects(Bucket=L, Delimiter="/", MaxKeys=2, Marker=marker)
    got = [o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])]
    check(len(got) <= 2, f"V1 page of MaxKeys=2 with a delimiter: {got}")
    seen += got
    if not r["IsTruncated"]:
        break
    eq(r.get("NextMarker"), max(got), "V1 truncated with a delimiter: NextMarker is the page's last entry")
    marker = r["NextMarker"]
eq(sorted(seen), ["a/", "b/", "c", "d e", "z/"], "V1 pagination with a delimiter")
seen = []
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=L, Delimiter="/", PaginationConfig={"PageSize": 2}):
    seen += [o["Key"] for o in page.get("Contents", [])] + [p["Prefix"] for p in page.get("CommonPrefixes", [])]
eq(sorted(seen), ["a/", "b/", "c", "d e", "z/"], "V2 paginator with a delimiter")
r = s3.list_objects_v2(Bucket=L, StartAfter="b/1")
eq([o["Key"] for o in r["Contents"]], ["c", "d e", "z/\u00fcn\u00efcode"], "V2 StartAfter")
eq(s3.get_object(Bucket=L, Key="z/\u00fcn\u00efcode")["Body"].read(), payload("z/\u00fcn\u00efcode", lsizes[
    "z/\u00fcn\u00efcode"]), "unicode key")

# Copies: to another key and bucket, across modes, onto itself.
data = payload("obj-s3", N)
r = s3.copy_object(Bucket=B, Key="copy-kms", CopySource={"Bucket": B, "Key": "obj-s3"},
                   ServerSideEncryption="aws:kms", SSEKMSKeyId=KMS_ALIAS)
check_sse_headers(r, "kms-alias", "copy s3 -> kms")
g = s3.get_object(Bucket=B, Key="copy-kms")
eq((g["Body"].read(), g["Metadata"], g["ContentType"]), (data, {"colour": "s3", "two-words": "a b"}, "text/x-s3"),
   "copy s3 -> kms: bytes and metadata copied")
check_sse_headers(g, "kms-alias", "GET of the copy")
ckey, ckw = sse_c_key("c")
r = s3.copy_object(Bucket=L, Key="from-c", CopySource={"Bucket": B, "Key": "obj-c"},
                   CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=ckey)
check_sse_headers(r, "default", "copy c -> other bucket (bucket default)")
eq(r["CopyObjectResult"]["ETag"], f'"{md5_hex(payload("obj-c", N))}"', "copy to SSE-S3: ETag is the MD5")
eq(s3.get_object(Bucket=L, Key="from-c")["Body"].read(), payload("obj-c", N), "copy c -> s3 bytes")
_, c2 = sse_c_key("c2")
r = s3.copy_object(Bucket=B, Key="copy-c2", CopySource={"Bucket": B, "Key": "obj-kms-id"}, **c2)
check_sse_headers(r, "c", "copy kms -> c", seed="c2")
eq(s3.get_object(Bucket=B, Key="copy-c2", **c2)["Body"].read(), payload("obj-kms-id", N), "copy kms -> c bytes")
expect_error(lambda: s3.copy_object(Bucket=B, Key="x", CopySource={"Bucket": B, "Key": "obj-c"}),
             "InvalidRequest", 400, "copy of an SSE-C source without its key")
expect_error(lambda: s3.copy_object(Bucket=B, Key="x", CopySource={"Bucket": B, "Key": "nope"}),
             "NoSuchKey", 404, "copy of a missing source")
s3.put_object(Bucket=B, Key="self", Body=data, Metadata={"a": "1"}, ContentType="text/x-one")
expect_error(lambda: s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}),
             "InvalidRequest", 400, "copy onto itself unchanged")
r = s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}, ServerSideEncryption="aws:kms",
                   SSEKMSKeyId=KMS_ARN)
check_sse_headers(r, "kms-arn", "self copy to SSE-KMS")
h = s3.head_object(Bucket=B, Key="self")
check_sse_headers(h, "kms-arn", "HEAD after the self copy to SSE-KMS")
eq((h["Metadata"], h["ContentType"], h["ContentLength"]), ({"a": "1"}, "text/x-one", N), "self copy keeps metadata")
r = s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}, MetadataDirective="REPLACE",
                   Metadata={"b": "2"}, ContentType="text/x-two")
h = s3.head_object(Bucket=B, Key="self")
eq((h["Metadata"], h["ContentType"]), ({"b": "2"}, "text/x-two"), "self copy with REPLACE: new metadata")
check_sse_headers(h, "default", "self copy without SSE headers: the bucket default (S3 does not keep the source's)")
eq(h["ETag"], r["CopyObjectResult"]["ETag"], "HEAD ETag = copy ETag")
eq(s3.get_object(Bucket=B, Key="self")["Body"].read(), data, "self copy bytes")
s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}, **ckw)
expect_error(lambda: s3.get_object(Bucket=B, Key="self"), "InvalidRequest", 400, "self copy to SSE-C: no key")
eq(s3.get_object(Bucket=B, Key="self", **ckw)["Body"].read(), data, "self copy to SSE-C bytes")

# Multipart with boto3's transfer manager: 5 MiB parts, every mode.
M = 2 * 5 * MiB + 12345
cfg = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)
for mode in ["s3", "kms-alias", "c"]:
    key = f"mp-{mode}"
    big = payload(key, M)
    path = os.path.join(TMP, key)
    with open(path, "wb") as f:
        f.write(big)
    s3.upload_file(path, B, key, Config=cfg,
                   ExtraArgs={"ContentType": "video/x-test", "Metadata": {"m": mode}, **sse_put_args(mode)})
    rd = sse_read_args(mode)
    h = s3.head_object(Bucket=B, Key=key, **rd)
    eq((h["ContentLength"], h["ContentType"], h["Metadata"]), (M, "video/x-test", {"m": mode}), f"{key} HEAD")
    check(h["ETag"].endswith('-3"'), f"{key}: multipart ETag of 3 parts: {h['ETag']}")
    check_sse_headers(h, mode, f"{key} HEAD")
    etags[key] = h["ETag"]
    g = s3.get_object(Bucket=B, Key=key, **rd)
    eq((g["Body"].read(), g["ETag"]), (big, h["ETag"]), f"{key} GET")
    check_sse_headers(g, mode, f"{key} GET")
    for a, b in [(5 * MiB - 10, 5 * MiB + 10), (5 * MiB + CHUNK - 1, 5 * MiB + CHUNK), (CHUNK - 3, 10 * MiB + 3),
                 (M - 100, M - 1)]:
        g = s3.get_object(Bucket=B, Key=key, Range=f"bytes={a}-{b}", **rd)
        eq((g["Body"].read(), g["ContentRange"]), (big[a:b + 1], f"bytes {a}-{b}/{M}"), f"{key} range {a}-{b}")
    eq(s3.get_object(Bucket=B, Key=key, Range="bytes=-7", **rd)["Body"].read(), big[-7:], f"{key} suffix range")

# Multipart by hand (SSE-KMS by id): Complete's ETag = HEAD's = LIST's.
p1, p2 = payload("mp-hand-1", 5 * MiB), payload("mp-hand-2", 4321)
up = s3.create_multipart_upload(Bucket=B, Key="mp-hand", ServerSideEncryption="aws:kms", SSEKMSKeyId=KMS_ALIAS,
                                Metadata={"h": "1"})
check_sse_headers(up, "kms-alias", "CreateMultipartUpload")
uid = up["UploadId"]
e2 = s3.upload_part(Bucket=B, Key="mp-hand", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
e1 = s3.upload_part(Bucket=B, Key="mp-hand", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
try:
    parts = s3.list_parts(Bucket=B, Key="mp-hand", UploadId=uid)["Parts"]
except botocore.exceptions.ClientError as e:
    parts = str(e)
eq([(p["PartNumber"], p["Size"]) for p in parts] if isinstance(parts, list) else parts, [(1, len(p1)), (2, len(p2))],
   "ListParts")
ups = s3.list_multipart_uploads(Bucket=B).get("Uploads", [])
eq([(u["Key"], u["UploadId"]) for u in ups], [("mp-hand", uid)], "ListMultipartUploads (no .objseal/ keys)")
r = s3.complete_multipart_upload(Bucket=B, Key="mp-hand", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
check(r["ETag"].endswith('-2"'), f"Complete ETag {r['ETag']}")
check_sse_headers(r, "kms-alias", "CompleteMultipartUpload")
etags["mp-hand"] = r["ETag"]
eq(s3.list_multipart_uploads(Bucket=B).get("Uploads", []), [], "no upload in progress after completion")
ab = s3.create_multipart_upload(Bucket=B, Key="mp-abort")["UploadId"]
s3.upload_part(Bucket=B, Key="mp-abort", UploadId=ab, PartNumber=1, Body=payload("mp-abort", 1000))
eq(s3.abort_multipart_upload(Bucket=B, Key="mp-abort", UploadId=ab)["ResponseMetadata"]["HTTPStatusCode"], 204,
   "AbortMultipartUpload")
expect_error(lambda: s3.upload_part(Bucket=B, Key="mp-abort", UploadId=ab, PartNumber=2, Body=b"x"),
             "NoSuchUpload", 404, "UploadPart after the abort")
expect_error(lambda: s3.get_object(Bucket=B, Key="mp-abort"), "NoSuchKey", 404, "an aborted upload makes no object")
h = s3.head_object(Bucket=B, Key="mp-hand")
eq((h["ETag"], h["ContentLength"], h["Metadata"]), (r["ETag"], len(p1) + len(p2), {"h": "1"}), "mp-hand HEAD")
eq(s3.get_object(Bucket=B, Key="mp-hand")["Body"].read(), p1 + p2, "mp-hand GET")
r = s3.copy_object(Bucket=B, Key="mp-copy", CopySource={"Bucket": B, "Key": "mp-hand"}, ServerSideEncryption="AES256")
eq(r["CopyObjectResult"]["ETag"], f'"{md5_hex(p1 + p2)}"', "CopyObject of a multipart object to SSE-S3: MD5 ETag")
eq(s3.get_object(Bucket=B, Key="mp-copy")["Body"].read(), p1 + p2, "copy of a multipart object")
etags["mp-copy"] = r["CopyObjectResult"]["ETag"]

# The AWS CLI: `aws s3 cp` of 17 MiB (8 MiB parts) in every mode, s3api.
big = payload("cli-big", 17 * MiB + 5)
src = os.path.join(TMP, "cli-big")
with open(src, "wb") as f:
    f.write(big)
kfile = os.path.join(TMP, "c.key")
with open(kfile, "wb") as f:
    f.write(ckey)
for name, args in [("cli-s3", []), ("cli-kms", ["--sse", "aws:kms", "--sse-kms-key-id", KMS_ALIAS]),
                   ("cli-c", ["--sse-c", "AES256", "--sse-c-key", f"fileb://{kfile}"])]:
    aws("s3", "cp", "--only-show-errors", src, f"s3://{B}/{name}", *args)
    out = os.path.join(TMP, name + ".out")
    aws("s3", "cp", "--only-show-errors", f"s3://{B}/{name}", out, *args)
    with open(out, "rb") as f:
        eq(f.read(), big, f"aws s3 cp round trip {name}")
    os.remove(out)
    h = s3.head_object(Bucket=B, Key=name, **(ckw if name == "cli-c" else {}))
    eq(h["ContentLength"], len(big), f"{name} size")
    check(h["ETag"].endswith('-3"'), f"{name}: aws s3 cp made 3 parts: {h['ETag']}")
    etags[name] = h["ETag"]
ls = aws("s3", "ls", f"s3://{B}/").stdout
check(f"{len(big)} cli-kms" in ls and ".objseal" not in ls, f"aws s3 ls: plaintext sizes, no .objseal: {ls}")
import json as _json  # noqa: E402
head = _json.loads(aws("s3api", "head-object", "--bucket", B, "--key", "cli-kms").stdout)
eq((head["ServerSideEncryption"], head["SSEKMSKeyId"], head["ContentLength"]), ("aws:kms", KMS_ARN, len(big)),
   "s3api head-object")
r = aws("s3api", "get-object", "--bucket", B, "--key", "cli-c", "--range", "bytes=8388600-8388615",
        "--sse-customer-algorithm", "AES256", "--sse-customer-key", f"fileb://{kfile}", os.path.join(TMP, "r"))
with open(os.path.join(TMP, "r"), "rb") as f:
    eq(f.read(), big[8388600:8388616], "s3api ranged SSE-C get across the CLI's part boundary")

# Every object's listed ETag is its PUT/HEAD ETag; sizes are plaintext sizes.
listed = {o["Key"]: o for o in list_all_v2(s3, B)}
for k, e in etags.items():
    check(k in listed, f"{k} listed")
    eq(listed[k]["ETag"], e, f"LIST ETag = PUT/HEAD ETag ({k})")
eq(listed["cli-c"]["Size"], len(big), "LIST size of an SSE-C multipart object")
eq(listed["mp-kms-alias"]["Size"], M, "LIST size of an SSE-KMS multipart object")

# Errors.
_, wrong = sse_c_key("wrong")
expect_error(lambda: s3.get_object(Bucket=B, Key="obj-c", **wrong), "AccessDenied", 403, "SSE-C GET with a wrong key")
expect_error(lambda: s3.get_object(Bucket=B, Key="obj-c", Range="bytes=0-9", **wrong), "AccessDenied", 403,
             "SSE-C range with a wrong key")
expect_error(lambda: s3.head_object(Bucket=B, Key="obj-c", **wrong), "403", 403, "SSE-C HEAD with a wrong key")
expect_error(lambda: s3.get_object(Bucket=B, Key="mp-c", **wrong), "AccessDenied", 403,
             "SSE-C multipart GET with a wrong key")
expect_error(lambda: s3.get_object(Bucket=B, Key="obj-c"), "InvalidRequest", 400, "SSE-C GET without the key")
expect_error(lambda: s3.get_object(Bucket=B, Key="missing"), "NoSuchKey", 404, "GET of a missing key")
expect_error(lambda: s3.head_object(Bucket=B, Key="missing"), "404", 404, "HEAD of a missing key")
expect_error(lambda: s3.get_object(Bucket=B, Key=".objseal/bucket.json"), "NoSuchKey", 404,
             "GET of the hidden bucket.json")
expect_error(lambda: s3.get_object(Bucket="no-such-bucket-objseal", Key="k"), "NoSuchBucket", 404,
             "GET in a missing bucket")
expect_error(lambda: s3.list_objects_v2(Bucket="no-such-bucket-objseal"), "NoSuchBucket", 404,
             "ListObjectsV2 of a missing bucket")
expect_error(lambda: s3.put_object(Bucket="no-such-bucket-objseal", Key="k", Body=b"x"), "NoSuchBucket", 404,
             "PUT into a missing bucket")
expect_error(lambda: s3.head_bucket(Bucket="no-such-bucket-objseal"), "404", 404, "HeadBucket of a missing bucket")
expect_error(lambda: s3.put_object(Bucket=B, Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                                   SSEKMSKeyId="alias/does-not-exist"),
             "KMS.NotFoundException", 400, "PUT under an unknown KMS key")
# What upstream mode reserves (docs/FORMAT.md section 9).
expect_error(lambda: s3.put_object(Bucket=B, Key="x", Body=b"x", Metadata={"objseal-envelope": "AAAA"}),
             "InvalidArgument", 400, "PUT with a metadata name starting with objseal-")
expect_error(lambda: s3.put_object(Bucket=B, Key=".objseal/bucket.json", Body=b"{}"),
             "InvalidArgument", 400, "PUT of a key under .objseal/")
expect_error(lambda: s3.copy_object(Bucket=B, Key=".objseal/x", CopySource={"Bucket": B, "Key": "obj-s3"}),
             "InvalidArgument", 400, "copy to a key under .objseal/")
expect_error(lambda: s3.create_multipart_upload(Bucket=B, Key=".objseal/manifests/x"),
             "InvalidArgument", 400, "multipart upload to a key under .objseal/")

# Deletes: objects, then the bucket (its hidden files do not keep it).
D = "up-delete"
s3.create_bucket(Bucket=D)
s3.put_object(Bucket=D, Key="one", Body=payload("del", 10))
s3.put_object(Bucket=D, Key="two", Body=payload("del", 20))
expect_error(lambda: s3.delete_bucket(Bucket=D), "BucketNotEmpty", 409, "DeleteBucket with objects")
eq(s3.delete_object(Bucket=D, Key="one")["ResponseMetadata"]["HTTPStatusCode"], 204, "DeleteObject")
expect_error(lambda: s3.get_object(Bucket=D, Key="one"), "NoSuchKey", 404, "GET after DeleteObject")
r = s3.delete_objects(Bucket=D, Delete={"Objects": [{"Key": "two"}]})
eq([d["Key"] for d in r.get("Deleted", [])], ["two"], "DeleteObjects")
eq(s3.list_objects_v2(Bucket=D)["KeyCount"], 0, "empty after the deletes")
eq(s3.delete_bucket(Bucket=D)["ResponseMetadata"]["HTTPStatusCode"], 204, "DeleteBucket of an emptied bucket")
expect_error(lambda: s3.head_bucket(Bucket=D), "404", 404, "HeadBucket after DeleteBucket")

done("upstream_flows.py")

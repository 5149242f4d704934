"""Buckets, objects, ranges, conditions, listings and every SSE mode, as boto3 sees them."""

import base64
import datetime
import json
import os

from common import *

s3 = client()
B = "objects"

# Buckets
s3.create_bucket(Bucket=B)
names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
check(B in names, f"ListBuckets shows {B}: {names}")
eq(s3.head_bucket(Bucket=B)["ResponseMetadata"]["HTTPStatusCode"], 200, "HeadBucket")
expect_error(lambda: s3.create_bucket(Bucket=B), "BucketAlreadyOwnedByYou", 409, "CreateBucket twice")
expect_error(lambda: s3.head_bucket(Bucket="no-such-bucket"), "404", 404, "HeadBucket missing")
expect_error(lambda: s3.list_objects_v2(Bucket="no-such-bucket"), "NoSuchBucket", 404, "List missing bucket")

# SSE-S3 by default: ETag is the MD5 of the plaintext.
data = b"hello, sealed world\n" * 1000
r = s3.put_object(Bucket=B, Key="plain.txt", Body=data, ContentType="text/plain",
                  Metadata={"colour": "blue"})
eq(r["ServerSideEncryption"], "AES256", "PUT default SSE header")
eq(r["ETag"], f'"{md5_hex(data)}"', "SSE-S3 ETag is MD5 of plaintext")
g = s3.get_object(Bucket=B, Key="plain.txt")
eq(g["Body"].read(), data, "GET bytes")
eq(g["ServerSideEncryption"], "AES256", "GET SSE header")
eq(g["ContentLength"], len(data), "GET length")
eq(g["ContentType"], "text/plain", "GET content type")
eq(g["Metadata"], {"colour": "blue"}, "GET user metadata")
eq(g["ETag"], r["ETag"], "GET ETag")
h = s3.head_object(Bucket=B, Key="plain.txt")
eq(h["ContentLength"], len(data), "HEAD shows plaintext size")
eq(h["ServerSideEncryption"], "AES256", "HEAD SSE header")
eq(h["Metadata"], {"colour": "blue"}, "HEAD user metadata")

# Ranges
for rng, want in [("bytes=10-19", data[10:20]), ("bytes=-5", data[-5:]),
                  ("bytes=19990-", data[19990:]), ("bytes=0-0", data[:1]),
                  ("bytes=100-999999", data[100:])]:
    g = s3.get_object(Bucket=B, Key="plain.txt", Range=rng)
    eq(g["ResponseMetadata"]["HTTPStatusCode"], 206, f"{rng} status")
    eq(g["Body"].read(), want, f"{rng} bytes")
    eq(g["ContentLength"], len(want), f"{rng} length")
eq(s3.get_object(Bucket=B, Key="plain.txt", Range="bytes=10-19")["ContentRange"],
   f"bytes 10-19/{len(data)}", "Content-Range")
expect_error(lambda: s3.get_object(Bucket=B, Key="plain.txt", Range="bytes=20000-"),
             "InvalidRange", 416, "range past the end")

# A larger object across many chunks, ranges over chunk boundaries.
big = os.urandom(3 * 1024 * 1024 + 12345)
s3.put_object(Bucket=B, Key="big.bin", Body=big)
eq(s3.get_object(Bucket=B, Key="big.bin")["Body"].read(), big, "big GET")
for a, b in [(16383, 16385), (1_000_000, 2_500_000), (len(big) - 20000, len(big) - 1)]:
    got = s3.get_object(Bucket=B, Key="big.bin", Range=f"bytes={a}-{b}")["Body"].read()
    eq(got, big[a:b + 1], f"big range {a}-{b}")

# Conditions
etag = s3.head_object(Bucket=B, Key="plain.txt")["ETag"]
eq(s3.get_object(Bucket=B, Key="plain.txt", IfMatch=etag)["Body"].read(), data, "If-Match ok")
expect_error(lambda: s3.get_object(Bucket=B, Key="plain.txt", IfMatch='"0123"'),
             "PreconditionFailed", 412, "If-Match wrong")
expect_error(lambda: s3.get_object(Bucket=B, Key="plain.txt", IfNoneMatch=etag),
             "304", 304, "If-None-Match same")
future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
expect_error(lambda: s3.get_object(Bucket=B, Key="plain.txt", IfModifiedSince=future),
             "304", 304, "If-Modified-Since future")
eq(len(s3.get_object(Bucket=B, Key="plain.txt", IfModifiedSince=past)["Body"].read()), len(data),
   "If-Modified-Since past")
expect_error(lambda: s3.get_object(Bucket=B, Key="plain.txt", IfUnmodifiedSince=past),
             "PreconditionFailed", 412, "If-Unmodified-Since past")

# Response header overrides and conditional writes.
g = s3.get_object(Bucket=B, Key="plain.txt", ResponseContentType="application/x-override",
                  ResponseContentDisposition="attachment; filename=x.txt")
eq((g["ContentType"], g["ContentDisposition"]), ("application/x-override", "attachment; filename=x.txt"),
   "response-* overrides")
expect_error(lambda: s3.put_object(Bucket=B, Key="plain.txt", Body=b"x", IfNoneMatch="*"),
             "PreconditionFailed", 412, "If-None-Match: * on an existing key")
r = s3.put_object(Bucket=B, Key="fresh", Body=b"new", IfNoneMatch="*")
expect_error(lambda: s3.put_object(Bucket=B, Key="fresh", Body=b"x", IfMatch='"0123"'),
             "PreconditionFailed", 412, "If-Match with another ETag")
s3.put_object(Bucket=B, Key="fresh", Body=b"newer", IfMatch=r["ETag"])
eq(s3.get_object(Bucket=B, Key="fresh")["Body"].read(), b"newer", "If-Match write")
s3.delete_object(Bucket=B, Key="fresh")

# SSE-KMS: the default key, an alias, an ARN, a context, a bucket key.
objseal("kms", "create-key", "--alias", "alias/app")
body = b"kms protected " * 500
r = s3.put_object(Bucket=B, Key="kms-default", Body=body, ServerSideEncryption="aws:kms")
eq(r["ServerSideEncryption"], "aws:kms", "KMS PUT header")
check(r["SSEKMSKeyId"].startswith("arn:"), f"KMS key id is an ARN: {r['SSEKMSKeyId']}")
check(r["ETag"] != f'"{md5_hex(body)}"', "SSE-KMS ETag is not the plaintext MD5")
default_arn = r["SSEKMSKeyId"]
g = s3.get_object(Bucket=B, Key="kms-default")
eq(g["Body"].read(), body, "KMS GET")
eq(g["SSEKMSKeyId"], default_arn, "KMS GET key id")
r = s3.put_object(Bucket=B, Key="kms-alias", Body=body, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId="alias/app")
app_arn = r["SSEKMSKeyId"]
check(app_arn != default_arn and app_arn.startswith("arn:"), "alias/app resolves to its own key")
r = s3.put_object(Bucket=B, Key="kms-arn", Body=body, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=app_arn)
eq(r["SSEKMSKeyId"], app_arn, "PUT by ARN")
key_id = app_arn.split("/")[-1]
r = s3.put_object(Bucket=B, Key="kms-id", Body=body, ServerSideEncryption="aws:kms",
                  SSEKMSKeyId=key_id)
eq(r["SSEKMSKeyId"], app_arn, "PUT by key id")
ctx = base64.b64encode(json.dumps({"dept": "eng"}).encode()).decode()
r = s3.put_object(Bucket=B, Key="kms-ctx", Body=body, ServerSideEncryption="aws:kms",
                  SSEKMSEncryptionContext=ctx, BucketKeyEnabled=True)
eq(r.get("BucketKeyEnabled"), True, "bucket key echoed")
g = s3.get_object(Bucket=B, Key="kms-ctx")
eq(g["Body"].read(), body, "KMS with context GET")
eq(g.get("BucketKeyEnabled"), True, "bucket key on GET")
eq(s3.get_object(Bucket=B, Key="kms-arn", Range="bytes=5-9")["Body"].read(), body[5:10], "KMS range")
expect_error(lambda: s3.put_object(Bucket=B, Key="x", Body=b"x", ServerSideEncryption="aws:kms",
                                   SSEKMSKeyId="alias/does-not-exist"),
             "KMS.NotFoundException", 400, "unknown KMS key")

# SSE-C
key, kw = sse_c_key("objects")
r = s3.put_object(Bucket=B, Key="sse-c", Body=body, **kw)
eq(r["SSECustomerAlgorithm"], "AES256", "SSE-C PUT algorithm")
eq(r["SSECustomerKeyMD5"], base64.b64encode(hashlib.md5(key).digest()).decode(), "SSE-C key MD5")
check("ServerSideEncryption" not in r, "SSE-C PUT has no x-amz-server-side-encryption")
check(r["ETag"] != f'"{md5_hex(body)}"', "SSE-C ETag is not the plaintext MD5")
g = s3.get_object(Bucket=B, Key="sse-c", **kw)
eq(g["Body"].read(), body, "SSE-C GET")
eq(g["SSECustomerKeyMD5"], r["SSECustomerKeyMD5"], "SSE-C GET key MD5")
eq(s3.head_object(Bucket=B, Key="sse-c", **kw)["ContentLength"], len(body), "SSE-C HEAD")
eq(s3.get_object(Bucket=B, Key="sse-c", Range="bytes=-3", **kw)["Body"].read(), body[-3:], "SSE-C range")

# Default bucket encryption
E = "encrypted-by-default"
s3.create_bucket(Bucket=E)
enc = s3.get_bucket_encryption(Bucket=E)["ServerSideEncryptionConfiguration"]["Rules"][0]
eq(enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "AES256", "new bucket default")
s3.put_bucket_encryption(Bucket=E, ServerSideEncryptionConfiguration={"Rules": [{
    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/app"},
    "BucketKeyEnabled": True}]})
enc = s3.get_bucket_encryption(Bucket=E)["ServerSideEncryptionConfiguration"]["Rules"][0]
eq(enc["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"], "aws:kms", "GetBucketEncryption alg")
eq(enc["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"], "alias/app", "GetBucketEncryption key")
eq(enc.get("BucketKeyEnabled"), True, "GetBucketEncryption bucket key")
r = s3.put_object(Bucket=E, Key="o", Body=b"default kms")
eq((r["ServerSideEncryption"], r["SSEKMSKeyId"], r.get("BucketKeyEnabled")),
   ("aws:kms", app_arn, True), "PUT under the bucket's KMS default")
r = s3.put_object(Bucket=E, Key="o2", Body=b"explicit", ServerSideEncryption="AES256")
eq(r["ServerSideEncryption"], "AES256", "explicit SSE-S3 wins over the default")
s3.delete_bucket_encryption(Bucket=E)
r = s3.put_object(Bucket=E, Key="o3", Body=b"back to s3")
eq(r["ServerSideEncryption"], "AES256", "after DeleteBucketEncryption")
eq(s3.get_object(Bucket=E, Key="o")["Body"].read(), b"default kms", "KMS default object reads")
expect_error(lambda: s3.put_bucket_encryption(Bucket=E, ServerSideEncryptionConfiguration={"Rules": [{
    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256", "KMSMasterKeyID": "alias/app"}}]}),
    "InvalidArgument", 400, "KMS key with AES256 default")

# Listings: prefixes, delimiters, pagination, versions, plaintext sizes, odd keys.
L = "listing"
s3.create_bucket(Bucket=L)
keys = ["a/1", "a/2", "b/x/1", "c", "d with space", "e+plus%percent", "f/ünïcode.txt"]
for k in keys:
    s3.put_object(Bucket=L, Key=k, Body=k.encode() * 3)
r = s3.list_objects_v2(Bucket=L)
eq([o["Key"] for o in r["Contents"]], sorted(keys), "ListObjectsV2 keys")
eq([o["Size"] for o in r["Contents"]], [len(k.encode()) * 3 for k in sorted(keys)], "plaintext sizes")
eq(r["KeyCount"], len(keys), "KeyCount")
r = s3.list_objects_v2(Bucket=L, Delimiter="/")
eq([p["Prefix"] for p in r["CommonPrefixes"]], ["a/", "b/", "f/"], "common prefixes")
eq([o["Key"] for o in r["Contents"]], ["c", "d with space", "e+plus%percent"], "top level keys")
r = s3.list_objects_v2(Bucket=L, Prefix="b/", Delimiter="/")
eq([p["Prefix"] for p in r["CommonPrefixes"]], ["b/x/"], "nested prefix")
seen, token = [], None
for _ in range(20):
    kw2 = {"ContinuationToken": token} if token else {}
    r = s3.list_objects_v2(Bucket=L, MaxKeys=2, **kw2)
    seen += [o["Key"] for o in r.get("Contents", [])]
    if not r["IsTruncated"]:
        break
    token = r["NextContinuationToken"]
eq(seen, sorted(keys), "V2 pagination")
seen = []
for page in s3.get_paginator("list_objects").paginate(Bucket=L, PaginationConfig={"PageSize": 3}):
    seen += [o["Key"] for o in page.get("Contents", [])]
eq(seen, sorted(keys), "V1 pagination")
r = s3.list_objects(Bucket=L, Delimiter="/", MaxKeys=2)
eq((r["IsTruncated"], r.get("NextMarker")), (True, "b/"), "V1 truncated with delimiter")
r = s3.list_objects(Bucket=L, Delimiter="/", Marker="b/")
eq([o["Key"] for o in r.get("Contents", [])] + [p["Prefix"] for p in r.get("CommonPrefixes", [])],
   ["c", "d with space", "e+plus%percent", "f/"], "V1 after a prefix marker")
r = s3.list_object_versions(Bucket=L, Prefix="a/")
eq([(v["Key"], v["VersionId"], v["IsLatest"]) for v in r["Versions"]],
   [("a/1", "null", True), ("a/2", "null", True)], "ListObjectVersions")
eq(s3.get_object(Bucket=L, Key="f/ünïcode.txt")["Body"].read(), "f/ünïcode.txt".encode() * 3, "unicode key")

# Concurrent PUTs of one key end as one complete object.
import concurrent.futures
bodies = [bytes([65 + i]) * (200_000 + i * 1000) for i in range(8)]
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    etags = list(pool.map(lambda b: client().put_object(Bucket=L, Key="race", Body=b)["ETag"], bodies))
g = s3.get_object(Bucket=L, Key="race")
got = g["Body"].read()
check(got in bodies, "the object after concurrent PUTs is one of them, whole")
eq(g["ETag"], f'"{md5_hex(got)}"', "its ETag matches its bytes")
s3.delete_object(Bucket=L, Key="race")

# Deletes
s3.delete_object(Bucket=L, Key="c")
expect_error(lambda: s3.get_object(Bucket=L, Key="c"), "NoSuchKey", 404, "GET deleted")
expect_error(lambda: s3.head_object(Bucket=L, Key="c"), "404", 404, "HEAD deleted")
eq(s3.delete_object(Bucket=L, Key="never-there")["ResponseMetadata"]["HTTPStatusCode"], 204,
   "DELETE of a missing key")
expect_error(lambda: s3.delete_bucket(Bucket=L), "BucketNotEmpty", 409, "DeleteBucket not empty")
r = s3.delete_objects(Bucket=L, Delete={"Objects": [{"Key": k} for k in keys]})
eq(sorted(d["Key"] for d in r["Deleted"]), sorted(keys), "DeleteObjects")
eq(s3.list_objects_v2(Bucket=L)["KeyCount"], 0, "empty after DeleteObjects")
s3.delete_bucket(Bucket=L)
expect_error(lambda: s3.head_bucket(Bucket=L), "404", 404, "bucket deleted")

done("objects.py")

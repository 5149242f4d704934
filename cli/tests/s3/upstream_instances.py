"""Two gateways on one home and one upstream: what A writes B reads and
lists; after `objseal keys rotate` both seal new SSE-S3 objects under the new
keyring version within 5 s (seen in the upstream envelope), and objects of
both versions read through both."""

import time

from upstream_common import *  # noqa: F403
from upstream_common import (KMS_ALIAS, MiB, allow_sse_c, put_default, check, check_sse_headers, client, client_b, done, eq, expect_error, inspect_upstream,
                             list_all_v2, objseal, payload, active_key_version, sse_put_args, sse_read_args,
                             upstream_client)

a, b, up = client(), client_b(), upstream_client()
T = "up-two"
a.create_bucket(Bucket=T)
allow_sse_c(a, T)
eq(b.head_bucket(Bucket=T)["ResponseMetadata"]["HTTPStatusCode"], 200, "B sees the bucket A made")
check(T in [x["Name"] for x in b.list_buckets()["Buckets"]], "B lists the bucket A made")
expect_error(lambda: b.create_bucket(Bucket=T), "BucketAlreadyOwnedByYou", 409, "B creating A's bucket")

# A writes, B reads and lists.
written = {}
for mode in ["s3", "kms-alias", "c"]:
    key, data = f"from-a-{mode}", payload(f"from-a-{mode}", 50_000)
    r = a.put_object(Bucket=T, Key=key, Body=data, Metadata={"by": "a"}, **sse_put_args(mode))
    written[key] = (mode, data, r["ETag"])
    g = b.get_object(Bucket=T, Key=key, **sse_read_args(mode))
    eq((g["Body"].read(), g["ETag"], g["Metadata"]), (data, r["ETag"], {"by": "a"}), f"B reads A's {mode} object")
    check_sse_headers(g, mode, f"B's GET of A's {mode} object")
    eq(b.get_object(Bucket=T, Key=key, Range="bytes=16380-16390", **sse_read_args(mode))["Body"].read(),
       data[16380:16391], f"B's range of A's {mode} object")
big = payload("from-a-mp", 5 * MiB + 999)
up_ = a.create_multipart_upload(Bucket=T, Key="from-a-mp")
e1 = a.upload_part(Bucket=T, Key="from-a-mp", UploadId=up_["UploadId"], PartNumber=1, Body=big[:5 * MiB])["ETag"]
e2 = b.upload_part(Bucket=T, Key="from-a-mp", UploadId=up_["UploadId"], PartNumber=2, Body=big[5 * MiB:])["ETag"]
r = b.complete_multipart_upload(Bucket=T, Key="from-a-mp", UploadId=up_["UploadId"], MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
written["from-a-mp"] = ("default", big, r["ETag"])
eq(a.get_object(Bucket=T, Key="from-a-mp")["Body"].read(), big, "upload begun on A, finished on B, read on A")
listed = {o["Key"]: o for o in list_all_v2(b, T)}
eq(sorted(listed), sorted(written), "B lists A's objects")
for k, (mode, data, etag) in written.items():
    eq((listed[k]["Size"], listed[k]["ETag"]), (len(data), etag), f"B's listing of {k}: size and ETag")

# A bucket's default encryption set through A applies to B's PUTs within 5 s
# (gateways re-read a bucket record at most 2 s after they last read it).
put_default(a, T, "aws:kms", KMS_ALIAS)
t0 = time.monotonic()
while True:
    r = b.put_object(Bucket=T, Key="default-kms", Body=payload("default-kms", 100))
    if r.get("ServerSideEncryption") == "aws:kms" or time.monotonic() - t0 > 5:
        break
    time.sleep(0.2)
check_sse_headers(r, "kms-alias", f"B's PUT under the KMS default A set (after {time.monotonic() - t0:.2f}s)")
written["default-kms"] = ("kms-alias", payload("default-kms", 100), r["ETag"])
allow_sse_c(a, T)
time.sleep(0.1)
t0 = time.monotonic()
while True:
    r = b.put_object(Bucket=T, Key="default-s3", Body=payload("default-s3", 100))
    if r.get("ServerSideEncryption") == "AES256" or time.monotonic() - t0 > 5:
        break
    time.sleep(0.2)
check_sse_headers(r, "s3", f"B's PUT back under SSE-S3 (after {time.monotonic() - t0:.2f}s)")
written["default-s3"] = ("s3", payload("default-s3", 100), r["ETag"])

# Rotation.
v1 = active_key_version()
r = inspect_upstream(up, T, "from-a-s3")
eq((r["mode"], r["key"]["version"]), ("SSE-S3", v1), "A's SSE-S3 object is sealed under the active version")
objseal("keys", "rotate")
v2 = active_key_version()
eq(v2, v1 + 1, "keys rotate makes a new active version")
for name, gw in [("B", b), ("A", a)]:
    t0, n, seen = time.monotonic(), 0, None
    while True:
        key = f"after-{name}-{n}"
        data = payload(key, 20_000)
        gw.put_object(Bucket=T, Key=key, Body=data)
        seen = inspect_upstream(up, T, key)["key"]["version"]
        written[key] = ("default", data, None)
        n += 1
        if seen == v2 or time.monotonic() - t0 > 5:
            break
        time.sleep(0.25)
    took = time.monotonic() - t0
    eq(seen, v2, f"{name} seals SSE-S3 under version {v2} within 5 s (after {took:.2f}s, {n} PUTs)")
    print(f"{name} used key version {v2} after {took:.2f}s ({n} PUTs)")
for name, gw in [("A", a), ("B", b)]:
    for k, (mode, data, _) in written.items():
        eq(gw.get_object(Bucket=T, Key=k, **sse_read_args(mode))["Body"].read(), data,
           f"{name} reads {k} ({mode}) after the rotation")
versions = {inspect_upstream(up, T, k)["key"]["version"] for k in written if k.startswith(("after-", "from-a-s3"))}
eq(sorted(versions), [v1, v2], "objects of both versions are stored")

# Deleted through one, gone through the other.
a.delete_object(Bucket=T, Key="after-A-0")
expect_error(lambda: b.get_object(Bucket=T, Key="after-A-0"), "NoSuchKey", 404, "B after A's delete")
done("upstream_instances.py")

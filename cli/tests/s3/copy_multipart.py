"""CopyObject across SSE modes, multipart uploads (out of order, UploadPartCopy with
ranges), ListParts/ListMultipartUploads/Abort and GetObjectAttributes."""

import os

from common import *

s3 = client()
B = "copies"
s3.create_bucket(Bucket=B)
k1, c1 = sse_c_key("one")
k2, c2 = sse_c_key("two")
data = os.urandom(300_000)


def copy_src_c(kw):
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": kw["SSECustomerKey"]}


# Every source mode to every destination mode.
srcs = {"s3": {}, "kms": {"ServerSideEncryption": "aws:kms"}, "c": c1}
dsts = {"s3": {"ServerSideEncryption": "AES256"}, "kms": {"ServerSideEncryption": "aws:kms"}, "c": c2}
for sn, skw in srcs.items():
    s3.put_object(Bucket=B, Key=f"src-{sn}", Body=data, **skw)
    for dn, dkw in dsts.items():
        extra = copy_src_c(c1) if sn == "c" else {}
        r = s3.copy_object(Bucket=B, Key=f"dst-{sn}-{dn}", CopySource={"Bucket": B, "Key": f"src-{sn}"},
                           **dkw, **extra)
        want = {"s3": "AES256", "kms": "aws:kms"}.get(dn)
        eq(r.get("ServerSideEncryption"), want, f"copy {sn}->{dn} SSE header")
        if dn == "c":
            eq(r["SSECustomerAlgorithm"], "AES256", f"copy {sn}->{dn} SSE-C header")
        if dn == "s3":
            eq(r["CopyObjectResult"]["ETag"], f'"{md5_hex(data)}"', f"copy {sn}->s3 ETag")
        got = s3.get_object(Bucket=B, Key=f"dst-{sn}-{dn}", **(c2 if dn == "c" else {}))["Body"].read()
        eq(got, data, f"copy {sn}->{dn} bytes")

expect_error(lambda: s3.copy_object(Bucket=B, Key="x", CopySource={"Bucket": B, "Key": "src-c"}),
             "InvalidRequest", 400, "copy of an SSE-C source without its key")
expect_error(lambda: s3.copy_object(Bucket=B, Key="x", CopySource={"Bucket": B, "Key": "src-c"}, **copy_src_c(c2)),
             "AccessDenied", 403, "copy of an SSE-C source with a wrong key")
expect_error(lambda: s3.copy_object(Bucket=B, Key="x", CopySource={"Bucket": B, "Key": "missing"}),
             "NoSuchKey", 404, "copy of a missing source")

# Onto itself: illegal unchanged; a new key or REPLACE makes it legal (rewrap).
s3.put_object(Bucket=B, Key="self", Body=data, Metadata={"a": "1"}, ContentType="text/x-one")
expect_error(lambda: s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}),
             "InvalidRequest", 400, "copy onto itself unchanged")
r = s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}, ServerSideEncryption="aws:kms")
eq(r["ServerSideEncryption"], "aws:kms", "self copy to KMS")
eq(s3.get_object(Bucket=B, Key="self")["Body"].read(), data, "self copy to KMS bytes")
s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}, **c1)
expect_error(lambda: s3.get_object(Bucket=B, Key="self"), "InvalidRequest", 400, "self copy now SSE-C")
eq(s3.get_object(Bucket=B, Key="self", **c1)["Body"].read(), data, "self copy to SSE-C bytes")
s3.copy_object(Bucket=B, Key="self", CopySource={"Bucket": B, "Key": "self"}, **c2, **copy_src_c(c1))
eq(s3.get_object(Bucket=B, Key="self", **c2)["Body"].read(), data, "SSE-C key rotated by self copy")
h = s3.head_object(Bucket=B, Key="self", **c2)
eq((h["Metadata"], h["ContentType"]), ({"a": "1"}, "text/x-one"), "metadata kept (COPY)")
s3.copy_object(Bucket=B, Key="meta", CopySource={"Bucket": B, "Key": "src-s3"},
               MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/x-two")
h = s3.head_object(Bucket=B, Key="meta")
eq((h["Metadata"], h["ContentType"]), ({"b": "2"}, "text/x-two"), "metadata replaced (REPLACE)")

# Multipart, SSE-KMS, parts uploaded out of order.
MB = 1024 * 1024
p1, p2, p3 = os.urandom(5 * MB), os.urandom(5 * MB + 17), os.urandom(1234)
up = s3.create_multipart_upload(Bucket=B, Key="mp", ServerSideEncryption="aws:kms", ContentType="video/x-test",
                                Metadata={"m": "p"})
eq(up["ServerSideEncryption"], "aws:kms", "create multipart SSE header")
uid = up["UploadId"]
e3 = s3.upload_part(Bucket=B, Key="mp", UploadId=uid, PartNumber=3, Body=p3)["ETag"]
e1 = s3.upload_part(Bucket=B, Key="mp", UploadId=uid, PartNumber=1, Body=p1)["ETag"]
e2 = s3.upload_part(Bucket=B, Key="mp", UploadId=uid, PartNumber=2, Body=p2)["ETag"]
parts = s3.list_parts(Bucket=B, Key="mp", UploadId=uid)["Parts"]
eq([(p["PartNumber"], p["Size"]) for p in parts], [(1, len(p1)), (2, len(p2)), (3, len(p3))], "ListParts")
ups = s3.list_multipart_uploads(Bucket=B).get("Uploads", [])
eq([(u["Key"], u["UploadId"]) for u in ups], [("mp", uid)], "ListMultipartUploads")
expect_error(lambda: s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}), "InvalidPartOrder", 400, "parts out of order")
expect_error(lambda: s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": '"00000000000000000000000000000000"'}]}), "InvalidPart", 400, "wrong part ETag")
r = s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}, {"PartNumber": 3, "ETag": e3}]})
check(r["ETag"].endswith('-3"'), f"multipart ETag {r['ETag']}")
eq(r.get("ServerSideEncryption"), "aws:kms", "complete SSE header")
whole = p1 + p2 + p3
g = s3.get_object(Bucket=B, Key="mp")
eq(g["Body"].read(), whole, "multipart GET")
eq((g["ContentType"], g["Metadata"], g["ETag"]), ("video/x-test", {"m": "p"}, r["ETag"]), "multipart headers")
a, b = 5 * MB - 10, 5 * MB + 10
eq(s3.get_object(Bucket=B, Key="mp", Range=f"bytes={a}-{b}")["Body"].read(), whole[a:b + 1], "range over a part boundary")
eq(s3.get_object(Bucket=B, Key="mp", Range="bytes=-100")["Body"].read(), whole[-100:], "multipart suffix range")
eq(s3.head_object(Bucket=B, Key="mp")["ContentLength"], len(whole), "multipart HEAD size")
attrs = s3.get_object_attributes(Bucket=B, Key="mp", ObjectAttributes=["ETag", "ObjectSize", "ObjectParts"])
eq(attrs["ObjectSize"], len(whole), "GetObjectAttributes size")
eq(attrs["ObjectParts"]["TotalPartsCount"], 3, "GetObjectAttributes parts")
eq(attrs["ETag"].strip('"'), r["ETag"].strip('"'), "GetObjectAttributes ETag")
eq(s3.list_multipart_uploads(Bucket=B).get("Uploads", []), [], "no uploads left")
g = s3.get_object(Bucket=B, Key="mp", PartNumber=2)
eq((g["Body"].read(), g["PartsCount"], g["ContentRange"]),
   (p2, 3, f"bytes {len(p1)}-{len(p1) + len(p2) - 1}/{len(whole)}"), "GET ?partNumber=2")
h = s3.head_object(Bucket=B, Key="mp", PartNumber=3)
eq((h["ContentLength"], h["PartsCount"]), (len(p3), 3), "HEAD ?partNumber=3")
expect_error(lambda: s3.get_object(Bucket=B, Key="mp", PartNumber=4), "InvalidPartNumber", 416, "part past the end")
eq(s3.get_object(Bucket=B, Key="src-s3", PartNumber=1)["Body"].read(), data, "part 1 of a single-part object")
r2 = s3.copy_object(Bucket=B, Key="mp-copy", CopySource={"Bucket": B, "Key": "mp"}, **c1)
eq(s3.get_object(Bucket=B, Key="mp-copy", **c1)["Body"].read(), whole, "copy of a multipart object")

# Multipart SSE-C, with UploadPartCopy ranges from an SSE-KMS source.
up = s3.create_multipart_upload(Bucket=B, Key="mpc", **c1)
uid = up["UploadId"]
expect_error(lambda: s3.upload_part(Bucket=B, Key="mpc", UploadId=uid, PartNumber=1, Body=b"x"),
             "InvalidRequest", 400, "SSE-C part without the key")
expect_error(lambda: s3.upload_part(Bucket=B, Key="mpc", UploadId=uid, PartNumber=1, Body=b"x", **c2),
             "InvalidArgument", 400, "SSE-C part with another key")
e2 = s3.upload_part(Bucket=B, Key="mpc", UploadId=uid, PartNumber=2, Body=p3, **c1)["ETag"]
e1 = s3.upload_part_copy(Bucket=B, Key="mpc", UploadId=uid, PartNumber=1,
                         CopySource={"Bucket": B, "Key": "mp"}, CopySourceRange=f"bytes=100-{100 + 5 * MB - 1}",
                         **c1)["CopyPartResult"]["ETag"]
r = s3.complete_multipart_upload(Bucket=B, Key="mpc", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}, **c1)
check(r["ETag"].endswith('-2"'), "SSE-C multipart ETag")
eq(s3.get_object(Bucket=B, Key="mpc", **c1)["Body"].read(), whole[100:100 + 5 * MB] + p3, "UploadPartCopy bytes")
expect_error(lambda: s3.get_object(Bucket=B, Key="mpc", **c2), "AccessDenied", 403, "SSE-C multipart wrong key")

# Too small, aborted.
up = s3.create_multipart_upload(Bucket=B, Key="small")
uid = up["UploadId"]
f1 = s3.upload_part(Bucket=B, Key="small", UploadId=uid, PartNumber=1, Body=b"tiny")["ETag"]
f2 = s3.upload_part(Bucket=B, Key="small", UploadId=uid, PartNumber=2, Body=b"tiny")["ETag"]
expect_error(lambda: s3.complete_multipart_upload(Bucket=B, Key="small", UploadId=uid, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": f1}, {"PartNumber": 2, "ETag": f2}]}), "EntityTooSmall", 400, "part under 5 MiB")
s3.abort_multipart_upload(Bucket=B, Key="small", UploadId=uid)
expect_error(lambda: s3.list_parts(Bucket=B, Key="small", UploadId=uid), "NoSuchUpload", 404, "aborted upload")
expect_error(lambda: s3.upload_part(Bucket=B, Key="small", UploadId="../../etc", PartNumber=1, Body=b"x"),
             "NoSuchUpload", 404, "bad upload id")

# The AWS CLI's own multipart upload (files over 8 MiB).
import subprocess, tempfile
AWS = os.environ["AWS_CLI"]
env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ["S3_ACCESS_KEY"],
           AWS_SECRET_ACCESS_KEY=os.environ["S3_SECRET_KEY"], AWS_DEFAULT_REGION="us-east-1")
tmp = tempfile.mkdtemp()
big = os.urandom(20 * MB + 5)
with open(os.path.join(tmp, "big"), "wb") as f:
    f.write(big)
for args in (["--sse", "aws:kms"], ["--sse-c", "AES256", "--sse-c-key", "fileb://" + os.path.join(tmp, "k")]):
    with open(os.path.join(tmp, "k"), "wb") as f:
        f.write(k1)
    r = subprocess.run([AWS, "--endpoint-url", ENDPOINT, "s3", "cp", os.path.join(tmp, "big"), f"s3://{B}/cli-big",
                        *args], env=env, capture_output=True, text=True)
    check(r.returncode == 0, f"aws s3 cp multipart {args[0]}: {r.stderr}")
    r = subprocess.run([AWS, "--endpoint-url", ENDPOINT, "s3", "cp", f"s3://{B}/cli-big", os.path.join(tmp, "out"),
                        *args], env=env, capture_output=True, text=True)
    check(r.returncode == 0, f"aws s3 cp download {args[0]}: {r.stderr}")
    with open(os.path.join(tmp, "out"), "rb") as f:
        eq(f.read(), big, f"aws s3 cp multipart round trip {args[0]}")
done("copy_multipart.py")

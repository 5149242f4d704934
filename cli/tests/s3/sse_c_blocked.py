"""New buckets block SSE-C writes unless the server allows them by default."""

from common import *

s3 = client()
B = "blocked"
s3.create_bucket(Bucket=B)
_, kw = sse_c_key("blocked")
expect_error(lambda: s3.put_object(Bucket=B, Key="c", Body=b"x", **kw), "AccessDenied", 403,
             "SSE-C PUT to a new bucket")
r = s3.put_object(Bucket=B, Key="s3", Body=b"fine")
eq(r["ServerSideEncryption"], "AES256", "other modes still work")
expect_error(lambda: s3.get_object(Bucket=B, Key="c", **kw), "NoSuchKey", 404, "nothing was stored")

# The bucket's own configuration unblocks SSE-C, and blocks it again.
rule = s3.get_bucket_encryption(Bucket=B)["ServerSideEncryptionConfiguration"]["Rules"][0]
eq(rule.get("BlockedEncryptionTypes", {}).get("EncryptionType"), ["SSE-C"], "new bucket blocks SSE-C")
s3.put_bucket_encryption(Bucket=B, ServerSideEncryptionConfiguration={"Rules": [{
    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
    "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]}}]})
rule = s3.get_bucket_encryption(Bucket=B)["ServerSideEncryptionConfiguration"]["Rules"][0]
eq(rule["BlockedEncryptionTypes"]["EncryptionType"], ["NONE"], "SSE-C unblocked")
r = s3.put_object(Bucket=B, Key="c", Body=b"allowed now", **kw)
eq(r["SSECustomerAlgorithm"], "AES256", "SSE-C PUT once unblocked")
s3.put_bucket_encryption(Bucket=B, ServerSideEncryptionConfiguration={"Rules": [{
    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": True,
    "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]}}]})
expect_error(lambda: s3.put_object(Bucket=B, Key="c2", Body=b"x", **kw), "AccessDenied", 403, "blocked again")
eq(s3.get_object(Bucket=B, Key="c", **kw)["Body"].read(), b"allowed now", "existing SSE-C objects still read")
r = s3.put_object(Bucket=B, Key="k", Body=b"kms default")
eq((r["ServerSideEncryption"], r.get("BucketKeyEnabled")), ("aws:kms", True), "KMS default from the same rule")
expect_error(lambda: s3.put_bucket_encryption(Bucket=B, ServerSideEncryptionConfiguration={"Rules": [{
    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms:dsse"}}]}), "MalformedXML", 400, "unsupported default")
done("sse_c_blocked.py")

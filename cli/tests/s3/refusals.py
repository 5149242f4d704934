"""Wrong, missing and misplaced SSE-C keys, and a disabled KMS key."""

import base64

from common import *

s3 = client()
B = "refusals"
s3.create_bucket(Bucket=B)
key, kw = sse_c_key("right")
_, wrong = sse_c_key("wrong")
body = b"customer keyed " * 100
s3.put_object(Bucket=B, Key="c", Body=body, **kw)

expect_error(lambda: s3.get_object(Bucket=B, Key="c"), "InvalidRequest", 400, "SSE-C GET without key")
expect_error(lambda: s3.get_object(Bucket=B, Key="c", **wrong), "AccessDenied", 403, "SSE-C GET wrong key")
expect_error(lambda: s3.get_object(Bucket=B, Key="c", Range="bytes=0-9", **wrong),
             "AccessDenied", 403, "SSE-C range wrong key")
expect_error(lambda: s3.head_object(Bucket=B, Key="c"), "400", 400, "SSE-C HEAD without key")
expect_error(lambda: s3.head_object(Bucket=B, Key="c", **wrong), "403", 403, "SSE-C HEAD wrong key")
eq(s3.get_object(Bucket=B, Key="c", **kw)["Body"].read(), body, "right key still opens")

# A key whose MD5 does not match.
bad_md5 = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
           "SSECustomerKeyMD5": base64.b64encode(b"0" * 16).decode()}
expect_error(lambda: s3.put_object(Bucket=B, Key="m", Body=b"x", **bad_md5),
             "InvalidArgument", 400, "SSE-C key MD5 mismatch")
# A key of the wrong length.
short = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": b"short"}
expect_error(lambda: s3.put_object(Bucket=B, Key="m", Body=b"x", **short),
             "InvalidArgument", 400, "SSE-C short key")
# SSE-C with x-amz-server-side-encryption.
expect_error(lambda: s3.put_object(Bucket=B, Key="m", Body=b"x", ServerSideEncryption="AES256", **kw),
             "InvalidArgument", 400, "SSE-C together with SSE-S3")
# A customer key for an object that is not SSE-C.
s3.put_object(Bucket=B, Key="s3", Body=b"managed")
expect_error(lambda: s3.get_object(Bucket=B, Key="s3", **kw), "InvalidRequest", 400,
             "SSE-C key for an SSE-S3 object")
# Unsupported algorithm.
expect_error(lambda: s3.put_object(Bucket=B, Key="m", Body=b"x", ServerSideEncryption="aws:kms:dsse"),
             "InvalidArgument", 400, "DSSE refused")

# A disabled KMS key: existing objects no longer open, new ones are refused.
objseal("kms", "create-key", "--alias", "alias/doomed")
kbody = b"soon unreadable " * 50
r = s3.put_object(Bucket=B, Key="k", Body=kbody, ServerSideEncryption="aws:kms", SSEKMSKeyId="alias/doomed")
eq(s3.get_object(Bucket=B, Key="k")["Body"].read(), kbody, "KMS object before disable")
objseal("kms", "disable", "alias/doomed")
expect_error(lambda: s3.get_object(Bucket=B, Key="k"), "KMS.DisabledException", 400, "GET under a disabled key")
expect_error(lambda: s3.put_object(Bucket=B, Key="k2", Body=b"x", ServerSideEncryption="aws:kms",
                                   SSEKMSKeyId="alias/doomed"),
             "KMS.DisabledException", 400, "PUT under a disabled key")
h = s3.head_object(Bucket=B, Key="k")
eq(h["ContentLength"], len(kbody), "HEAD needs no KMS call")
objseal("kms", "enable", "alias/doomed")
eq(s3.get_object(Bucket=B, Key="k")["Body"].read(), kbody, "KMS object after re-enable")

done("refusals.py")

"""The server's object size limit (--max-object-size 1MiB) and S3's key and metadata limits."""

import os
import urllib.request

from common import *

s3 = client()
B = "limits"
s3.create_bucket(Bucket=B)
s3.put_object(Bucket=B, Key="ok", Body=b"x" * (1024 * 1024))
expect_error(lambda: s3.put_object(Bucket=B, Key="big", Body=b"x" * (1024 * 1024 + 1)),
             "EntityTooLarge", 400, "declared length over the limit")
# A chunked upload (length unknown) is cut off at the limit.
url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "chunked"}, ExpiresIn=60)
try:
    urllib.request.urlopen(urllib.request.Request(url, method="PUT", data=iter([b"y" * 65536] * 20)))
    check(False, "chunked upload over the limit succeeded")
except urllib.error.HTTPError as e:
    eq(e.code, 400, "chunked upload over the limit")
except OSError:
    check(True, "connection closed on an oversized chunked upload")
expect_error(lambda: s3.head_object(Bucket=B, Key="chunked"), "404", 404, "nothing stored")
expect_error(lambda: s3.put_object(Bucket=B, Key="k" * 1025, Body=b"x"), "KeyTooLongError", 400, "key over 1024 bytes")
expect_error(lambda: s3.put_object(Bucket=B, Key="m", Body=b"x", Metadata={"big": "v" * 2100}),
             "MetadataTooLarge", 400, "metadata over 2 KB")
done("limits.py")

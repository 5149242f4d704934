"""SSE-C over plain HTTP is refused as S3 refuses it."""

from common import *

s3 = client()
B = "plainhttp"
s3.create_bucket(Bucket=B)
_, kw = sse_c_key("http")
e = expect_error(lambda: s3.put_object(Bucket=B, Key="c", Body=b"x", **kw), "InvalidRequest", 400,
                 "SSE-C PUT over HTTP")
check("secure connection" in e.response["Error"]["Message"], "message names the secure connection")
s3.put_object(Bucket=B, Key="s3", Body=b"fine")
expect_error(lambda: s3.get_object(Bucket=B, Key="s3", **kw), "InvalidRequest", 400, "SSE-C GET over HTTP")
done("sse_c_http.py")

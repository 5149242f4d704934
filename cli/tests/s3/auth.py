"""Unsigned and badly signed requests are refused; presigned URLs work."""

import urllib.error
import urllib.request

from common import *

s3 = client()
B = "authbucket"
s3.create_bucket(Bucket=B)
s3.put_object(Bucket=B, Key="k", Body=b"secret")


def status(url, method="GET", data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, data=data)) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


st, body = status(f"{ENDPOINT}/{B}/k")
eq(st, 403, "unsigned GET")
check(b"secret" not in body, "unsigned GET leaks nothing")
eq(status(f"{ENDPOINT}/")[0], 403, "unsigned ListBuckets")
eq(status(f"{ENDPOINT}/{B}/new", "PUT", b"data")[0], 403, "unsigned PUT")
bad = client(secret="not-the-secret")
expect_error(lambda: bad.get_object(Bucket=B, Key="k"), "SignatureDoesNotMatch", 403, "wrong secret")
unknown = client(access="OSKNOBODY", secret="x")
expect_error(lambda: unknown.list_buckets(), "InvalidAccessKeyId", 403, "unknown access key")
url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "k"}, ExpiresIn=60)
eq(status(url), (200, b"secret"), "presigned GET")
put_url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "p"}, ExpiresIn=60)
eq(status(put_url, "PUT", b"presigned body")[0], 200, "presigned PUT")
eq(s3.get_object(Bucket=B, Key="p")["Body"].read(), b"presigned body", "presigned PUT stored")
# A chunked upload (no Content-Length): sealed with its length unknown.
put_url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "chunked"}, ExpiresIn=60)
pieces = [b"piece-%d " % i * 5000 for i in range(20)]
req = urllib.request.Request(put_url, method="PUT", data=iter(pieces))
with urllib.request.urlopen(req) as r:
    eq(r.status, 200, "chunked presigned PUT")
whole = b"".join(pieces)
eq(s3.get_object(Bucket=B, Key="chunked")["Body"].read(), whole, "chunked upload bytes")
eq(s3.head_object(Bucket=B, Key="chunked")["ContentLength"], len(whole), "chunked upload size")
eq(s3.get_object(Bucket=B, Key="chunked", Range="bytes=-7")["Body"].read(), whole[-7:], "chunked upload suffix range")
done("auth.py")

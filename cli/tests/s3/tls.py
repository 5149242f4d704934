"""HTTPS with a self-signed certificate: its fingerprint as printed, SSE-C accepted over TLS."""

import hashlib
import ssl
import urllib.parse
import warnings

from common import *

warnings.filterwarnings("ignore")
u = urllib.parse.urlparse(ENDPOINT)
eq(u.scheme, "https", "endpoint scheme")
pem = ssl.get_server_certificate((u.hostname, u.port))
der = ssl.PEM_cert_to_DER_cert(pem)
fp = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
eq(fp, os.environ["S3_TLS_FINGERPRINT"], "certificate fingerprint as printed")

ca = os.environ.get("S3_CA_BUNDLE")
s3 = client(verify=ca if ca else False)
if ca:
    check(True, "certificate verified against the given CA bundle")
s3.create_bucket(Bucket="tls")
_, kw = sse_c_key("tls")
r = s3.put_object(Bucket="tls", Key="c", Body=b"over tls", **kw)
eq(r["SSECustomerAlgorithm"], "AES256", "SSE-C PUT over TLS")
eq(s3.get_object(Bucket="tls", Key="c", **kw)["Body"].read(), b"over tls", "SSE-C GET over TLS")
r = s3.put_object(Bucket="tls", Key="k", Body=b"kms over tls", ServerSideEncryption="aws:kms")
eq(r["ServerSideEncryption"], "aws:kms", "KMS over TLS")
done("tls.py")

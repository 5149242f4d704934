"""Objects of every mode are stored without any of their plaintext."""

import os

from common import *

s3 = client()
B = "scan"
s3.create_bucket(Bucket=B)
_, kw = sse_c_key("scan")
marker = b"PLAINTEXT-MARKER-0123456789-"
objects = {
    "s3": (marker + b"sse-s3 ") * 2000,
    "kms": (marker + b"sse-kms ") * 2000,
    "c": (marker + b"sse-c ") * 2000,
    "small": marker + b"tiny",
}
s3.put_object(Bucket=B, Key="s3", Body=objects["s3"], ContentType="text/x-secret-type")
s3.put_object(Bucket=B, Key="kms", Body=objects["kms"], ServerSideEncryption="aws:kms")
s3.put_object(Bucket=B, Key="c", Body=objects["c"], **kw)
s3.put_object(Bucket=B, Key="small", Body=objects["small"])
eq(s3.get_object(Bucket=B, Key="c", **kw)["Body"].read(), objects["c"], "SSE-C readable")
data_dir = os.environ["S3_DATA_DIR"]
files = 0
for root, _, names in os.walk(data_dir):
    for n in names:
        with open(os.path.join(root, n), "rb") as f:
            content = f.read()
        files += 1
        check(marker[:16] not in content, f"{n} holds plaintext")
        for v in objects.values():
            check(v[16:48] not in content, f"{n} holds a plaintext slice")
check(files >= 4, f"scanned {files} files")
done("no_plaintext.py")

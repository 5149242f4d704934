"""The AWS CLI: `aws s3 cp --sse ...` and `aws s3api ... --sse-customer-key ...`."""

import base64
import json
import os
import subprocess
import tempfile

from common import *

AWS = os.environ["AWS_CLI"]
env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ["S3_ACCESS_KEY"],
           AWS_SECRET_ACCESS_KEY=os.environ["S3_SECRET_KEY"], AWS_DEFAULT_REGION="us-east-1")


def aws(*args, ok=True):
    r = subprocess.run([AWS, "--endpoint-url", ENDPOINT, *args], env=env, capture_output=True, text=True)
    if ok:
        check(r.returncode == 0, f"aws {' '.join(args)} failed: {r.stderr}")
    return r


tmp = tempfile.mkdtemp()
src = os.path.join(tmp, "src.bin")
payload = os.urandom(200_000)
with open(src, "wb") as f:
    f.write(payload)
aws("s3", "mb", "s3://cli-bucket")
check("cli-bucket" in aws("s3", "ls").stdout, "aws s3 ls lists the bucket")
for mode, args in [("s3", ["--sse", "AES256"]), ("kms", ["--sse", "aws:kms"]),
                   ("kmskey", ["--sse", "aws:kms", "--sse-kms-key-id", "alias/objseal"]), ("none", [])]:
    aws("s3", "cp", src, f"s3://cli-bucket/{mode}.bin", *args)
    dst = os.path.join(tmp, f"{mode}.out")
    aws("s3", "cp", f"s3://cli-bucket/{mode}.bin", dst)
    with open(dst, "rb") as f:
        eq(f.read(), payload, f"aws s3 cp round trip ({mode})")
head = json.loads(aws("s3api", "head-object", "--bucket", "cli-bucket", "--key", "kms.bin").stdout)
eq(head["ServerSideEncryption"], "aws:kms", "head-object after --sse aws:kms")
eq(head["ContentLength"], len(payload), "head-object plaintext size")
listing = aws("s3", "ls", "s3://cli-bucket/").stdout
check(str(len(payload)) in listing, f"aws s3 ls shows plaintext sizes: {listing}")

# SSE-C through s3api, key given as fileb://
keyfile = os.path.join(tmp, "c.key")
with open(keyfile, "wb") as f:
    f.write(hashlib.sha256(b"cli").digest())
c_args = ["--sse-customer-algorithm", "AES256", "--sse-customer-key", f"fileb://{keyfile}"]
put = json.loads(aws("s3api", "put-object", "--bucket", "cli-bucket", "--key", "c.bin",
                     "--body", src, *c_args).stdout)
eq(put["SSECustomerAlgorithm"], "AES256", "s3api put-object SSE-C")
out = os.path.join(tmp, "c.out")
aws("s3api", "get-object", "--bucket", "cli-bucket", "--key", "c.bin", *c_args, out)
with open(out, "rb") as f:
    eq(f.read(), payload, "s3api get-object SSE-C")
r = aws("s3api", "get-object", "--bucket", "cli-bucket", "--key", "c.bin", out, ok=False)
check(r.returncode != 0 and "InvalidRequest" in r.stderr, f"get-object without the key: {r.stderr}")
r = aws("s3api", "get-object", "--bucket", "cli-bucket", "--key", "c.bin", "--range", "bytes=0-99",
        *c_args, out)
with open(out, "rb") as f:
    eq(f.read(), payload[:100], "s3api ranged SSE-C get")
# aws s3 cp with SSE-C
aws("s3", "cp", src, "s3://cli-bucket/c2.bin", "--sse-c", "AES256", "--sse-c-key", f"fileb://{keyfile}")
aws("s3", "cp", "s3://cli-bucket/c2.bin", out, "--sse-c", "AES256", "--sse-c-key", f"fileb://{keyfile}")
with open(out, "rb") as f:
    eq(f.read(), payload, "aws s3 cp --sse-c round trip")
aws("s3", "rm", "s3://cli-bucket", "--recursive")
aws("s3", "rb", "s3://cli-bucket")
done("aws_cli.py")

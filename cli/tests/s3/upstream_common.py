"""Shared helpers of the `objseal serve --upstream` client tests (../serve_upstream.rs).

Environment (set by the test): S3_ENDPOINT / S3_ENDPOINT_B (gateways A and B,
one home), S3_ACCESS_KEY / S3_SECRET_KEY (their root key), UPSTREAM_ENDPOINT,
UPSTREAM_ACCESS_KEY / UPSTREAM_SECRET_KEY, UPSTREAM_KIND (moto or weed),
KMS_ENDPOINT, KMS_KEY_ID / KMS_KEY_ARN / KMS_KEY_ALIAS (a key made in moto),
OBJSEAL_BIN, OBJSEAL_HOME, AWS_CLI.
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile

import boto3
import botocore
from botocore.config import Config

import common
from common import *  # noqa: F401,F403 (client, check, eq, expect_error, md5_hex, sse_c_key, CHECKS)
from common import CHECKS, ENDPOINT, client, eq

# UPSTREAM_KEEP_GOING=1 (by hand, for diagnosis): a failed check is printed
# and counted instead of ending the script, which then fails at done().
FAILURES = []
if os.environ.get("UPSTREAM_KEEP_GOING") == "1":
    def _check(cond, what):
        CHECKS[0] += 1
        if not cond:
            FAILURES.append(what)
            print(f"FAILED: {what}", file=sys.stderr, flush=True)

    common.check = _check
check = common.check

ENDPOINT_B = os.environ.get("S3_ENDPOINT_B", "")
UPSTREAM = os.environ["UPSTREAM_ENDPOINT"]
KIND = os.environ.get("UPSTREAM_KIND", "upstream")
HOME = os.environ.get("OBJSEAL_HOME", "")
KMS_ID = os.environ.get("KMS_KEY_ID", "")
KMS_ARN = os.environ.get("KMS_KEY_ARN", "")
KMS_ALIAS = os.environ.get("KMS_KEY_ALIAS", "")
KiB = 1024
MiB = 1024 * KiB
CHUNK = 16 * KiB
# Every plaintext the scenarios store is made of lines holding this marker;
# the direct upstream check looks for it in every stored byte.
MARKER = b"OBJSEAL-PLAINTEXT-MARKER-5e1f0c9a-"
# The single-part trailer: magic, ETag digest, u64 length, the body's header.
TRAILER = 8 + 16 + 8 + 56
TMP = tempfile.mkdtemp(prefix="objseal-upstream-")


def client_b():
    """A boto3 client of gateway B (same home, same root key)."""
    return boto3.client(
        "s3",
        endpoint_url=ENDPOINT_B,
        aws_access_key_id=os.environ["S3_ACCESS_KEY"],
        aws_secret_access_key=os.environ["S3_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      signature_version="s3v4"),
    )


def upstream_client():
    """boto3 straight to the upstream store, with the upstream's own key."""
    return boto3.client(
        "s3",
        endpoint_url=UPSTREAM,
        aws_access_key_id=os.environ["UPSTREAM_ACCESS_KEY"],
        aws_secret_access_key=os.environ["UPSTREAM_SECRET_KEY"],
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                      signature_version="s3v4"),
    )


def payload(tag, n):
    """n bytes of marker lines, each unique (offset errors show in ranges)."""
    out, i = bytearray(), 0
    head = MARKER + tag.encode() + b":"
    while len(out) < n:
        out += head + b"%09d\n" % i
        i += 1
    return bytes(out[:n])


def sse_put_args(mode, seed="c"):
    """The PUT arguments of a mode: s3, kms-id, kms-arn, kms-alias, c."""
    if mode == "s3":
        return {"ServerSideEncryption": "AES256"}
    if mode.startswith("kms"):
        key = {"kms-id": KMS_ID, "kms-arn": KMS_ARN, "kms-alias": KMS_ALIAS}[mode]
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}
    if mode == "c":
        return sse_c_key(seed)[1]  # noqa: F405
    if mode == "default":
        return {}
    raise ValueError(mode)


def sse_read_args(mode, seed="c"):
    return sse_c_key(seed)[1] if mode == "c" else {}  # noqa: F405


def check_sse_headers(r, mode, what, seed="c"):
    """The SSE headers S3 answers for an object of `mode`."""
    if mode in ("s3", "default"):
        eq(r.get("ServerSideEncryption"), "AES256", f"{what}: x-amz-server-side-encryption")
        check("SSEKMSKeyId" not in r, f"{what}: no KMS key id on SSE-S3")
    elif mode.startswith("kms"):
        eq(r.get("ServerSideEncryption"), "aws:kms", f"{what}: x-amz-server-side-encryption")
        eq(r.get("SSEKMSKeyId"), KMS_ARN, f"{what}: KMS key id is the key's ARN")
    else:
        key = sse_c_key(seed)[0]  # noqa: F405
        check("ServerSideEncryption" not in r, f"{what}: no x-amz-server-side-encryption on SSE-C")
        eq(r.get("SSECustomerAlgorithm"), "AES256", f"{what}: SSE-C algorithm")
        eq(r.get("SSECustomerKeyMD5"), base64.b64encode(hashlib.md5(key).digest()).decode(),
           f"{what}: SSE-C key MD5")


def put_default(s3, bucket, algorithm="AES256", kms_key=None):
    """A bucket's default encryption, with SSE-C writes allowed."""
    default = {"SSEAlgorithm": algorithm, **({"KMSMasterKeyID": kms_key} if kms_key else {})}
    try:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": default, "BlockedEncryptionTypes": {"EncryptionType": ["NONE"]}}]})
    except botocore.exceptions.ClientError as e:
        check(False, f"PutBucketEncryption of {bucket} ({algorithm}, BlockedEncryptionTypes NONE): {e}")
        return
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    eq((rule["ApplyServerSideEncryptionByDefault"], rule.get("BlockedEncryptionTypes", {}).get("EncryptionType")),
       (default, ["NONE"]), f"{bucket}: GetBucketEncryption after PutBucketEncryption")


def allow_sse_c(s3, bucket):
    """New buckets block SSE-C writes (S3 since 2026): unblock them."""
    put_default(s3, bucket)


def objseal(*args):
    """`objseal --home $OBJSEAL_HOME ARGS` (stdout; fails the check on error)."""
    r = subprocess.run([os.environ["OBJSEAL_BIN"], "--home", HOME, *args],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"objseal {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r.stdout


def active_key_version():
    versions = json.loads(objseal("keys", "list", "--json"))["versions"]
    active = [v["version"] for v in versions if v["active"]]
    eq(len(active), 1, "one active keyring version")
    return active[0]


def upstream_object(up, bucket, key):
    """(metadata, body) of an upstream object."""
    g = up.get_object(Bucket=bucket, Key=key)
    return g["Metadata"], g["Body"].read()


def inspect_sealed(envelope_b64, body, name="obj", etag=None):
    """`objseal inspect --json` of base64decode(envelope) || body, the upstream
    form of a single-part object (docs/FORMAT.md section 9.1), after checking
    the trailer that follows the sealed body: its magic, ETag digest (when
    `etag` is given), plaintext length and copy of the body's header."""
    path = os.path.join(TMP, "inspect.osl")
    with open(path, "wb") as f:
        f.write(base64.b64decode(envelope_b64))
        f.write(body)
    r = json.loads(objseal("inspect", "--json", path))
    sealed = r["expected_body_len"]
    eq(r["body_len"], sealed + TRAILER, f"{name}: upstream body = sealed body + {TRAILER}-byte trailer")
    t = body[sealed:]
    eq(t[:8], b"OSUPTRL1", f"{name}: trailer magic")
    eq(int.from_bytes(t[24:32], "big"), r["plaintext_len"], f"{name}: trailer's plaintext length")
    eq(t[32:], body[:56], f"{name}: trailer's copy of the body header")
    if etag is not None:
        eq(f'"{t[8:24].hex()}"', etag, f"{name}: trailer's ETag digest = the client's ETag")
    return r


def inspect_upstream(up, bucket, key, etag=None):
    meta, body = upstream_object(up, bucket, key)
    env = meta.get("objseal-envelope")
    check(env is not None, f"upstream {bucket}/{key} has x-amz-meta-objseal-envelope: {sorted(meta)}")
    return inspect_sealed(env, body, f"{bucket}/{key}", etag)


def aws(*args, endpoint=None, ok=True):
    """The AWS CLI against a gateway (A by default), with the root key."""
    env = dict(os.environ, AWS_ACCESS_KEY_ID=os.environ["S3_ACCESS_KEY"],
               AWS_SECRET_ACCESS_KEY=os.environ["S3_SECRET_KEY"], AWS_DEFAULT_REGION="us-east-1")
    for k in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(k, None)
    r = subprocess.run([os.environ["AWS_CLI"], "--endpoint-url", endpoint or ENDPOINT, *args],
                       env=env, capture_output=True, text=True, timeout=120)
    if ok:
        check(r.returncode == 0, f"aws {' '.join(args)}: exit {r.returncode}: {r.stderr}")
    return r


def list_all_v2(s3, bucket, **kw):
    """Every key of a bucket through ListObjectsV2 pages."""
    out, token = [], None
    for _ in range(1000):
        extra = {"ContinuationToken": token} if token else {}
        r = s3.list_objects_v2(Bucket=bucket, **kw, **extra)
        out += r.get("Contents", [])
        if not r.get("IsTruncated"):
            return out
        token = r["NextContinuationToken"]
    check(False, f"listing {bucket} did not end")


def done(name):
    if FAILURES:
        print(f"{name} [{KIND}]: {len(FAILURES)} of {CHECKS[0]} checks failed", file=sys.stderr)
        sys.exit(1)
    print(f"{name} [{KIND}]: {CHECKS[0]} checks passed")

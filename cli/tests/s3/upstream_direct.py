"""boto3 straight to the upstream store: what the gateways wrote there.

`upstream_direct.py` (after the other upstream scripts): every bucket the
gateway lists is an upstream bucket of the same name holding the same keys
plus hidden ones under .objseal/ (bucket.json, multipart manifests); every
single-part object is base64(envelope) in x-amz-meta-objseal-envelope and
the sealed body plus the 88-byte trailer (docs/FORMAT.md section 9.1), which
`objseal inspect` reads as a whole sealed object of the listed plaintext size
bound to its bucket and key; a multipart object names a manifest whose
envelope in front of the upstream body is a whole sealed multipart object
(section 9.2); every stored object is larger than its plaintext; and no
upstream object (hidden ones too) nor its metadata holds any of the
plaintext markers.

`upstream_direct.py selftest` (no gateway): fills an upstream bucket the way
the layout says, with an object sealed by `objseal seal`, and checks that the
same checks pass on it and catch a plaintext body and plaintext metadata.
"""

import base64
import hashlib
import json
import os
import sys

import boto3
from botocore.config import Config

from upstream_common import *  # noqa: F403
from upstream_common import (KIND, MARKER, TMP, TRAILER, UPSTREAM, check, client, done, eq, expect_error,
                             inspect_sealed, list_all_v2, objseal, payload, upstream_client, upstream_object)

# Any 16 bytes of the marker betray plaintext.
PROBES = [MARKER[i:i + 16] for i in range(0, len(MARKER) - 15, 8)]


def leaks(data):
    return any(p in data for p in PROBES)


def scan(up):
    """Every upstream object of every bucket: [(bucket, key, what leaked)], count."""
    found, n = [], 0
    for b in sorted(x["Name"] for x in up.list_buckets()["Buckets"]):
        for o in list_all_v2(up, b):
            meta, body = upstream_object(up, b, o["Key"])
            n += 1
            if leaks(body):
                found.append((b, o["Key"], "body"))
            for mk, mv in meta.items():
                if leaks(mk.encode()) or leaks(mv.encode()):
                    found.append((b, o["Key"], f"metadata {mk}"))
    return found, n


def check_sealed(up, bucket, key, size, up_size, etag):
    """A single-part object stored upstream: inspect's view of it."""
    meta, body = upstream_object(up, bucket, key)
    eq(len(body), up_size, f"{bucket}/{key}: upstream GET length = listed size")
    r = inspect_sealed(meta["objseal-envelope"], body, f"{bucket}/{key}", etag)
    eq(r["plaintext_len"], size, f"{bucket}/{key}: envelope's plaintext length = gateway's size")
    eq(r["parts"], None, f"{bucket}/{key}: a single-part envelope")
    eq((r["bucket"], r["key_name"]), (bucket, key), f"{bucket}/{key}: envelope bound to its bucket and key")
    return r


def check_multipart(up, ups, bucket, key, size, up_size, etag, manifest_id):
    """A multipart object: its manifest's envelope in front of the upstream
    body is a whole sealed multipart object (docs/FORMAT.md section 9.2)."""
    m = f".objseal/manifests/{manifest_id}"
    check(m in ups, f"{bucket}/{key}: its manifest {m} exists upstream")
    check(len(manifest_id) == 32 and all(c in "0123456789abcdef" for c in manifest_id),
          f"{bucket}/{key}: manifest id {manifest_id!r} is 32 lowercase hex digits")
    _, raw = upstream_object(up, bucket, m)
    man = json.loads(raw)
    eq((man.get("v"), man.get("etag")), (1, etag), f"{bucket}/{key}: manifest version and ETag")
    _, body = upstream_object(up, bucket, key)
    eq(len(body), up_size, f"{bucket}/{key}: upstream GET length = listed size")
    path = os.path.join(TMP, "mp.osl")
    with open(path, "wb") as f:
        f.write(base64.b64decode(man["envelope"]))
        f.write(body)
    r = json.loads(objseal("inspect", "--json", path))
    parts = int(etag.strip('"').rsplit("-", 1)[1])
    eq((r["plaintext_len"], r["parts"], len(man.get("headers", []))), (size, parts, parts),
       f"{bucket}/{key}: manifest envelope's length and part count")
    eq((r["bucket"], r["key_name"]), (bucket, key), f"{bucket}/{key}: manifest envelope bound to its bucket and key")
    eq(r["body_len"], r["expected_body_len"], f"{bucket}/{key}: upstream body = the part bodies")
    return r


def selftest():
    up = upstream_client()
    B = "objseal-selftest"
    up.create_bucket(Bucket=B)
    if KIND == "weed":
        # SeaweedFS checks SigV4: the gateway's upstream requests are really verified.
        bad = boto3.client("s3", endpoint_url=UPSTREAM, aws_access_key_id=os.environ["UPSTREAM_ACCESS_KEY"],
                           aws_secret_access_key="not-the-secret", region_name="us-east-1",
                           config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        expect_error(lambda: bad.list_objects_v2(Bucket=B), "SignatureDoesNotMatch", 403, "weed: a wrong secret")
    plain = payload("selftest", 70_000)
    src = os.path.join(TMP, "plain.bin")
    with open(src, "wb") as f:
        f.write(plain)
    out = os.path.join(TMP, "sealed.osl")
    objseal("seal", "-q", src, "-o", out, "--bucket", B, "--key", "sealed.bin")
    with open(out, "rb") as f:
        sealed = f.read()
    env_len = json.loads(objseal("inspect", "--json", out))["envelope_len"]
    body = sealed[env_len:]
    etag = hashlib.md5(plain).digest()
    trailer = b"OSUPTRL1" + etag + len(plain).to_bytes(8, "big") + body[:56]
    eq(len(trailer), TRAILER, "selftest: trailer length")
    up.put_object(Bucket=B, Key="sealed.bin", Body=body + trailer,
                  Metadata={"objseal-envelope": base64.b64encode(sealed[:env_len]).decode()})
    up.put_object(Bucket=B, Key=".objseal/bucket.json", Body=b"{}")
    listed = {o["Key"]: o["Size"] for o in list_all_v2(up, B)}
    eq(sorted(listed), [".objseal/bucket.json", "sealed.bin"], "selftest upstream listing")
    check(listed["sealed.bin"] > len(plain), "selftest: stored larger than plaintext")
    r = check_sealed(up, B, "sealed.bin", len(plain), listed["sealed.bin"], f'"{etag.hex()}"')
    eq(r["mode"], "SSE-S3", "selftest: inspect mode")
    check(r["key"]["version"] >= 1, f"selftest: keyring version {r['key']}")
    found, n = scan(up)
    eq(found, [], "selftest: a sealed upstream holds no plaintext")
    check(n >= 2, f"selftest: scanned {n} objects")
    # The scan finds plaintext in a body and in metadata.
    up.put_object(Bucket=B, Key="leak", Body=b"x" * 100 + plain[5000:5100])
    up.put_object(Bucket=B, Key="meta-leak", Body=b"x", Metadata={"note": plain[:40].decode()})
    found, _ = scan(up)
    eq(sorted(found), [(B, "leak", "body"), (B, "meta-leak", "metadata note")], "selftest: the scan finds leaks")
    for k in list(listed) + ["leak", "meta-leak"]:
        up.delete_object(Bucket=B, Key=k)
    up.delete_bucket(Bucket=B)
    done("upstream_direct.py selftest")


def main():
    s3, up = client(), upstream_client()
    up_buckets = {b["Name"] for b in up.list_buckets()["Buckets"]}
    gw_buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    check(len(gw_buckets) >= 2, f"the gateway lists buckets: {gw_buckets}")
    check("up-delete" not in up_buckets, f"the bucket deleted through the gateway is gone upstream: {sorted(up_buckets)}")
    modes, multipart, objects = set(), 0, 0
    for b in gw_buckets:
        check(b in up_buckets, f"gateway bucket {b} is an upstream bucket of the same name: {sorted(up_buckets)}")
        gw = {o["Key"]: o for o in list_all_v2(s3, b)}
        ups = {o["Key"]: o for o in list_all_v2(up, b)}
        eq([k for k in gw if k.startswith(".objseal/")], [], f"{b}: the gateway lists no .objseal/ key")
        check(".objseal/bucket.json" in ups, f"{b}: upstream holds .objseal/bucket.json")
        eq(sorted(k for k in ups if not k.startswith(".objseal/")), sorted(gw),
           f"{b}: upstream keys (less .objseal/) = gateway keys")
        manifests = set()
        for k, o in gw.items():
            if k not in ups:
                continue
            objects += 1
            u = ups[k]
            check(u["Size"] > o["Size"], f"{b}/{k}: stored {u['Size']} bytes, more than plaintext {o['Size']}")
            meta = up.head_object(Bucket=b, Key=k)["Metadata"]
            if "objseal-envelope" in meta:
                r = check_sealed(up, b, k, o["Size"], u["Size"], o["ETag"])
            elif "objseal-manifest" in meta:
                multipart += 1
                manifests.add(f".objseal/manifests/{meta['objseal-manifest']}")
                r = check_multipart(up, ups, b, k, o["Size"], u["Size"], o["ETag"], meta["objseal-manifest"])
            else:
                check(False, f"{b}/{k}: upstream metadata has no objseal-envelope/-manifest: {sorted(meta)}")
                continue
            modes.add(r["mode"])
            if r["mode"] == "SSE-KMS":
                check(os.environ["KMS_KEY_ID"] in str(r["key"]["id"]),
                      f"{b}/{k}: SSE-KMS envelope names the moto key: {r['key']}")
        eq(sorted(k for k in ups if k.startswith(".objseal/manifests/")), sorted(manifests),
           f"{b}: the manifests upstream are those of its multipart objects")
        eq([k for k in ups if k.startswith(".objseal/uploads/")], [], f"{b}: no upload record left after completion")
    eq(sorted(modes), ["SSE-C", "SSE-KMS", "SSE-S3"], "objects of every mode seen upstream")
    check(multipart >= 3, f"multipart objects seen upstream: {multipart}")
    found, n = scan(up)
    eq(found, [], "no plaintext in any upstream object or its metadata")
    check(n > objects, f"scanned {n} upstream objects (hidden ones too) for {objects} gateway objects")
    done("upstream_direct.py")


if __name__ == "__main__":
    selftest() if sys.argv[1:] == ["selftest"] else main()

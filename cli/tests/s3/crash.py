"""A server killed (SIGKILL) during an overwrite keeps the old object whole.
Phases (argv[1]): `before` stores v1; `slow` overwrites it slowly (killed
midway by the test); `after` checks what a restarted server serves."""

import hashlib
import os
import sys
import time
import urllib.request

from common import *

s3 = client()
B, K = "crashy", "victim"
V1 = b"version one " * 100_000
phase = sys.argv[1]
if phase == "before":
    s3.create_bucket(Bucket=B)
    s3.put_object(Bucket=B, Key=K, Body=V1)
    eq(s3.get_object(Bucket=B, Key=K)["Body"].read(), V1, "v1 stored")
elif phase == "slow":
    url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": K}, ExpiresIn=300)

    def pieces():
        for i in range(600):
            yield b"version two " * 10_000
            time.sleep(0.05)

    try:
        urllib.request.urlopen(urllib.request.Request(url, method="PUT", data=pieces()))
    except Exception:
        pass
    sys.exit(0)
elif phase == "after":
    eq(s3.get_object(Bucket=B, Key=K)["Body"].read(), V1, "after the crash: v1, whole")
    eq([o["Key"] for o in s3.list_objects_v2(Bucket=B)["Contents"]], [K], "one object listed")
    leftovers = []
    for root, _, names in os.walk(os.environ["S3_DATA_DIR"]):
        leftovers += [n for n in names if not (n.endswith(".obj") or n.startswith("bucket.json"))]
    eq(leftovers, [], "no temporary files left")
done(f"crash.py {phase}")

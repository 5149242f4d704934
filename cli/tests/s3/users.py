"""Users made with `objseal users add` while the server runs, each kept to its own buckets."""

import json
import os
import subprocess

from common import *

alice_u = json.loads(objseal("users", "add", "alice", "--json"))
bob_u = json.loads(objseal("users", "add", "bob", "--json"))
eq(sorted(alice_u), ["access_key_id", "secret_access_key", "user"], "users add --json fields")
eq(alice_u["user"], "alice", "user name")
check(alice_u["access_key_id"] != bob_u["access_key_id"], "distinct keys")
dup = subprocess.run([os.environ["OBJSEAL_BIN"], "users", "add", "alice"], capture_output=True, text=True)
eq(dup.returncode, 1, "adding a user twice is a usage error")
mode = os.stat(os.path.join(os.environ["OBJSEAL_HOME"], "users.json")).st_mode & 0o777
eq(mode, 0o600, "users file is private")

alice = client(alice_u["access_key_id"], alice_u["secret_access_key"])
bob = client(bob_u["access_key_id"], bob_u["secret_access_key"])
root = client()
alice.create_bucket(Bucket="alice-bucket")
alice.put_object(Bucket="alice-bucket", Key="diary", Body=b"dear diary")
bob.create_bucket(Bucket="bob-bucket")

eq([b["Name"] for b in alice.list_buckets()["Buckets"]], ["alice-bucket"], "alice sees her bucket only")
eq([b["Name"] for b in bob.list_buckets()["Buckets"]], ["bob-bucket"], "bob sees his bucket only")
eq([b["Name"] for b in root.list_buckets()["Buckets"]], [], "root sees none of theirs")
expect_error(lambda: bob.get_object(Bucket="alice-bucket", Key="diary"), "AccessDenied", 403, "bob reads alice's object")
expect_error(lambda: bob.put_object(Bucket="alice-bucket", Key="x", Body=b"x"), "AccessDenied", 403, "bob writes to alice's bucket")
expect_error(lambda: bob.list_objects_v2(Bucket="alice-bucket"), "AccessDenied", 403, "bob lists alice's bucket")
expect_error(lambda: bob.delete_object(Bucket="alice-bucket", Key="diary"), "AccessDenied", 403, "bob deletes alice's object")
expect_error(lambda: bob.delete_bucket(Bucket="alice-bucket"), "AccessDenied", 403, "bob deletes alice's bucket")
expect_error(lambda: bob.head_bucket(Bucket="alice-bucket"), "403", 403, "bob heads alice's bucket")
expect_error(lambda: bob.copy_object(Bucket="bob-bucket", Key="stolen", CopySource={"Bucket": "alice-bucket", "Key": "diary"}),
             "AccessDenied", 403, "bob copies from alice's bucket")
expect_error(lambda: bob.create_bucket(Bucket="alice-bucket"), "BucketAlreadyExists", 409, "bob takes alice's bucket name")
expect_error(lambda: root.get_object(Bucket="alice-bucket", Key="diary"), "AccessDenied", 403, "root reads alice's object")
eq(alice.get_object(Bucket="alice-bucket", Key="diary")["Body"].read(), b"dear diary", "alice reads her object")
done("users.py")

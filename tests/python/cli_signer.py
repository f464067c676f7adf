"""Signs pending metadata the way the RSTUF CLI's `admin metadata sign` does, with
securesystemslib and python-tuf from PyPI.

stdin:  {"metadata": <the pending metadata dict, as GET /api/v1/metadata/sign returns it>,
         "keyid": key id, "key_file": PEM private key path, "password": str|null,
         "public_key": the key dict, for roles whose keys live in their delegator (optional;
                       root's own keys are used for root)}
stdout: {"signature": {"keyid", "sig"}}   # what the CLI posts to /api/v1/metadata/sign
"""
import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import Metadata

req = json.load(sys.stdin)
md = Metadata.from_dict(json.loads(json.dumps(req["metadata"])))
keyid = req["keyid"]
password = req.get("password")
private = load_pem_private_key(open(req["key_file"], "rb").read(),
                               password=password.encode() if password else None)
if req.get("public_key"):
    public = SSlibKey.from_dict(keyid, dict(req["public_key"]))
else:
    public = SSlibKey.from_dict(keyid, md.signed.keys[keyid].to_dict())
signature = md.sign(CryptoSigner(private, public), append=True)
json.dump({"signature": signature.to_dict()}, sys.stdout)

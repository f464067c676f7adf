"""securesystemslib's reading of unencrypted private key PEM files, as an online-key file
is read by the RSTUF worker (`fn:` URIs) and the RSTUF CLI.

stdin: {"pems": [<PEM text>...], "msg": <hex>}
stdout: [{"key": <public key dict>, "keyid": <default keyid>, "sig": <hex signature of msg>}...]
"""
import json
import sys

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

req = json.load(sys.stdin)
msg = bytes.fromhex(req["msg"])
out = []
for pem in req["pems"]:
    signer = CryptoSigner(load_pem_private_key(pem.encode(), password=None))
    key = signer.public_key
    out.append({"key": key.to_dict(), "keyid": key.keyid, "sig": signer.sign(msg).signature})
json.dump(out, sys.stdout)

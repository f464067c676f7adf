"""securesystemslib's view of keys and signatures, both directions.

stdin: {"verify": [{"keyid", "key", "msg", "sig"}...],   # hex msg/sig made by Rust
        "sign": [{"scheme", "msg"}...]}                   # Python generates a key and signs
stdout: {"verify": [{"ok": bool, "keyid": <computed default keyid>}...],
         "sign": [{"key": <key dict>, "keyid", "sig"}...]}
"""
import json
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from securesystemslib.exceptions import UnverifiedSignatureError
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey
from securesystemslib.signer._utils import compute_default_keyid

req = json.load(sys.stdin)
out = {"verify": [], "sign": []}

for item in req["verify"]:
    key = SSlibKey.from_dict(item["keyid"], dict(item["key"]))
    msg = bytes.fromhex(item["msg"])
    try:
        key.verify_signature(Signature(item["keyid"], item["sig"]), msg)
        ok = True
    except UnverifiedSignatureError:
        ok = False
    d = item["key"]
    out["verify"].append({"ok": ok, "keyid": compute_default_keyid(d["keytype"], d["scheme"], d["keyval"])})

HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

for item in req["sign"]:
    scheme = item["scheme"]
    msg = bytes.fromhex(item["msg"])
    if scheme == "ed25519":
        signer = CryptoSigner.generate_ed25519()
    elif scheme.startswith("ecdsa-sha2-nistp"):
        curve = ec.SECP256R1() if scheme.endswith("256") else ec.SECP384R1()
        priv = ec.generate_private_key(curve)
        signer = CryptoSigner(priv, SSlibKey.from_crypto(priv.public_key(), scheme=scheme))
    elif scheme.endswith("-maxsalt"):
        base = scheme[: -len("-maxsalt")]
        h = HASHES[base.rsplit("-", 1)[1]]
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pub = SSlibKey.from_crypto(priv.public_key(), scheme=base)
        sig = priv.sign(msg, padding.PSS(mgf=padding.MGF1(h()), salt_length=padding.PSS.MAX_LENGTH), h())
        out["sign"].append({"key": pub.to_dict(), "keyid": pub.keyid, "sig": sig.hex()})
        continue
    else:
        priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signer = CryptoSigner(priv, SSlibKey.from_crypto(priv.public_key(), scheme=scheme))
    sig = signer.sign(msg)
    pub = signer.public_key
    out["sign"].append({"key": pub.to_dict(), "keyid": pub.keyid, "sig": sig.signature})

json.dump(out, sys.stdout)

"""Reads a JWKS on stdin; prints the first ES256 key as a PEM SubjectPublicKeyInfo."""
import base64, json, sys

def b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))

key = next(k for k in json.load(sys.stdin)["keys"] if k.get("alg") == "ES256")
# SPKI for P-256: SEQUENCE { AlgorithmIdentifier(ecPublicKey, prime256v1), BIT STRING 04||X||Y }
der = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200") + b"\x04" + b64url(key["x"]) + b64url(key["y"])
body = base64.b64encode(der).decode()
print("-----BEGIN PUBLIC KEY-----")
for i in range(0, len(body), 64):
    print(body[i:i + 64])
print("-----END PUBLIC KEY-----")

#!/usr/bin/env python3
"""Check a kernel module's appended signature against a certificate.

    modsig.py MODULE CERT.der

A signed module ends with its PKCS#7 signature (detached, over everything
before it), a struct module_signature (12 bytes, the signature's length
last, big-endian) and the line "~Module signature appended~". The
signature is checked with openssl against CERT alone (the key that must
have signed it, not a chain). Exits 0 when it verifies, 1 otherwise
(no signature, another key, a changed byte), saying why.
"""
import os
import struct
import subprocess
import sys
import tempfile

MAGIC = b"~Module signature appended~\n"


def main():
    module, cert = sys.argv[1], sys.argv[2]
    data = open(module, "rb").read()
    if not data.endswith(MAGIC):
        sys.exit(f"{module}: not signed")
    end = len(data) - len(MAGIC) - 12
    *_, id_type, _signer_len, _key_id_len, _p0, _p1, _p2, sig_len = struct.unpack(
        ">BBBBBBBBI", data[end:end + 12])
    if id_type != 2 or sig_len > end:
        sys.exit(f"{module}: not a PKCS#7 signature (type {id_type}, {sig_len} bytes)")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: os.path.join(tmp, name) for name in ("content", "sig", "cert.pem")}
        open(paths["content"], "wb").write(data[:end - sig_len])
        open(paths["sig"], "wb").write(data[end - sig_len:end])
        subprocess.run(["openssl", "x509", "-inform", "DER", "-in", cert, "-out", paths["cert.pem"]],
                       check=True)
        r = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER",
                            "-in", paths["sig"], "-content", paths["content"],
                            "-certfile", paths["cert.pem"], "-nointern", "-noverify",
                            "-out", os.devnull], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{module}: the signature does not verify with {cert}: "
                 f"{(r.stderr or r.stdout).strip().splitlines()[0]}")
    print(f"{module}: signed by {cert}")


main()

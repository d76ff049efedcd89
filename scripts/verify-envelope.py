#!/usr/bin/env python3
"""Verify a DSSE envelope holding an in-toto statement, offline, with
Python's securesystemslib -- an implementation independent of vexxy's.

usage: verify-envelope.py ENVELOPE PUBKEY.pem

PUBKEY.pem is a SubjectPublicKeyInfo PEM public key (ECDSA P-256 or
Ed25519), e.g. the .pub file `vexxy keygen` writes. The key's
securesystemslib default keyid must match the keyid in the envelope's
signature (vexxy writes exactly that keyid).

Prints the statement's subject(s) and predicate type, and exits
  0  when a signature verifies and the payload is an in-toto statement,
  1  when verification fails (bad signature, wrong key, tampered or
     malformed envelope, payload not an in-toto statement),
  2  on usage errors (wrong arguments, unreadable files, not a usable
     public key, securesystemslib or cryptography missing).

Needs: python3 -m pip install 'securesystemslib[crypto]'
"""

import json
import sys

USAGE = "usage: verify-envelope.py ENVELOPE PUBKEY.pem"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = (
    "https://in-toto.io/Statement/v1",
    "https://in-toto.io/Statement/v0.1",
)


def usage_error(message):
    print(f"verify-envelope: {message}", file=sys.stderr)
    print(USAGE, file=sys.stderr)
    return 2


def failed(message):
    print(f"verify-envelope: verification failed: {message}", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        return usage_error("expected exactly two arguments")
    envelope_path, key_path = argv[1], argv[2]

    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
        from securesystemslib.dsse import Envelope
        from securesystemslib.exceptions import VerificationError
        from securesystemslib.signer import SSlibKey
    except ImportError as e:
        return usage_error(
            f"securesystemslib with cryptography is not installed ({e}); "
            "run: python3 -m pip install 'securesystemslib[crypto]'"
        )

    try:
        with open(key_path, "rb") as f:
            key_pem = f.read()
        with open(envelope_path, "rb") as f:
            envelope_bytes = f.read()
    except OSError as e:
        return usage_error(f"cannot read {e.filename}: {e.strerror}")

    try:
        key = SSlibKey.from_crypto(load_pem_public_key(key_pem))
    except (ValueError, TypeError) as e:
        return usage_error(f"{key_path} is not a supported pem public key: {e}")

    try:
        data = json.loads(envelope_bytes)
        if not isinstance(data, dict):
            return failed("the envelope is not a json object")
        if not data.get("signatures"):
            return failed("the envelope has no signatures")
        envelope = Envelope.from_dict(data)
    except (ValueError, KeyError, TypeError) as e:
        # binascii.Error (bad base64) and json errors are ValueErrors.
        return failed(f"malformed dsse envelope: {type(e).__name__}: {e}")

    try:
        envelope.verify([key], 1)
    except VerificationError as e:
        return failed(f"no signature verifies with keyid {key.keyid}: {e}")

    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        return failed(f"payload type is {envelope.payload_type!r}, not {IN_TOTO_PAYLOAD_TYPE!r}")
    try:
        statement = json.loads(envelope.payload)
    except ValueError as e:
        return failed(f"payload is not json: {e}")
    if not isinstance(statement, dict) or statement.get("_type") not in STATEMENT_TYPES:
        return failed("payload is not an in-toto statement")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        return failed("the statement has no subject")

    print(f"verified with keyid {key.keyid} ({key.scheme})")
    print(f"predicateType: {statement.get('predicateType')}")
    for subject in subjects:
        if not isinstance(subject, dict) or not isinstance(subject.get("digest"), dict):
            return failed("a subject has no digest")
        digests = ", ".join(f"{alg}:{value}" for alg, value in sorted(subject["digest"].items()))
        print(f"subject: {subject.get('name', '')} {digests}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

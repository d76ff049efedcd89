//! DSSE envelopes with in-toto statements: keys (ECDSA P-256, Ed25519), signing and verification.

//! The decision engine: evidence providers combined into verdicts with a confidence; no I/O.

//! Pulls images from OCI distribution registries into a content-addressed OCI layout, verifying every digest.

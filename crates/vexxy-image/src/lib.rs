//! Container images from OCI layouts, oci-archives and docker-archives: content-addressed blob cache, digest verification, safe layer application into a rootfs, image config.

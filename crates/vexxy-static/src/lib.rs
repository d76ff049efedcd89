//! Static evidence from a root filesystem: the ELF dependency graph from the entrypoint, plugin loaders and configuration rules.

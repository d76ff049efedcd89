//! Scanner reports and SBOMs (Grype, Trivy, OSV-Scanner, SPDX, CycloneDX, Syft) parsed into the domain model.

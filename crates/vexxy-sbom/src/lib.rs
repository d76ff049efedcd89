//! SBOM writers: CycloneDX 1.6 and SPDX 2.3 JSON with the files each package owns.

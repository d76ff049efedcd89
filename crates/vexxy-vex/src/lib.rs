//! VEX documents: OpenVEX, CycloneDX VEX and CSAF VEX read into and written from the domain model; merge and validation.

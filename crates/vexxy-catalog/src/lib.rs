//! Package catalogers for a root filesystem (dpkg first) with the files each package owns.

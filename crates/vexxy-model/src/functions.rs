//! Functions an advisory names as vulnerable, and where they were found in
//! the image: the static half of a function-level verdict. The run's half is
//! [`crate::FunctionCalls`] on the same sites.

/// Where the names came from. Names from a structured record are trusted as
/// the advisory's; names mined from prose are candidates that may be wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SymbolOrigin {
    /// OSV `affected[].ecosystem_specific.imports[].symbols` (the Go
    /// vulnerability database carries these), from a report or an advisory
    /// file.
    Osv,
    /// Identifiers mined from the advisory's description text.
    AdvisoryText,
}

/// One place a named function was found: an object file of the package and
/// the symbol as that object spells it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionSite {
    /// Absolute path of the object in the image (canonical).
    pub object: String,
    /// The symbol's name in the object (`inflateGetHeader`,
    /// `golang.org/x/net/html.Render`).
    pub symbol: String,
    /// The function's file offset when the object's symbol tables do not
    /// give one a uprobe can use (a stripped Go binary's pclntab entry).
    pub offset: Option<u64>,
}

/// What resolving the names against the package's objects found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FunctionResolution {
    /// Every object of the package was read and none defines any of the
    /// names. `complete` is true when each object's full symbol table (or
    /// Go's pclntab) was available, so an internal function would have been
    /// seen too; false when only exported symbols could be read.
    Absent {
        objects_searched: Vec<String>,
        complete: bool,
    },
    /// At least one name is defined; every site found. `unresolved` are
    /// the names no readable object defines, `unreadable` the objects that
    /// could not be read (why): either leaves a name's absence from the
    /// sites unproven, so "the named functions never ran" needs both empty.
    Present {
        sites: Vec<FunctionSite>,
        unresolved: Vec<String>,
        unreadable: Vec<String>,
    },
    /// Nothing could be concluded (no object of the package readable, ...).
    Unresolved { reason: String },
}

/// The functions one finding's advisory names, resolved in the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedFunctions {
    /// The finding's vulnerability id (as in [`crate::Vulnerability::id`]).
    pub vulnerability: String,
    /// The finding's package name (as in [`crate::PackageRef::name`]).
    pub package: String,
    pub origin: SymbolOrigin,
    /// The names as the advisory gives them, deduplicated, sorted.
    pub names: Vec<String>,
    pub resolution: FunctionResolution,
}

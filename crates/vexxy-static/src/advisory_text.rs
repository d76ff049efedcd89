//! Candidate vulnerable-function names mined from an advisory's prose
//! (`vulnerability.description` in Grype and Trivy reports).
//!
//! Precision over recall: a name is taken only where the sentence says it is
//! a function, and only when it is spelled like a C (or C++) identifier:
//!
//! | context | example | shape required |
//! |---|---|---|
//! | `X()` | "a null pointer dereference in `ber_memalloc_x()`" | any identifier, ALLCAPS too |
//! | `the X function`, `function X` | "the `nss_parse_ciphers` function", "the function `find_exif_tag`" | code-like |
//! | `X in file.c` (and `X and Y in file.c`) | "`xmlUnlinkNode` in tree.c" | code-like |
//! | `in X via/when/because/…`, `occurs in X and Y` | "overflow in `zipOpenNewFileInZip4_64` via a long filename" | strongly code-like |
//!
//! *Code-like*: an identifier (`[A-Za-z_][A-Za-z0-9_]*`, or C++ `A::b`)
//! with an underscore next to a lowercase letter, a lower-to-upper case
//! change, a letter-digit-letter run or `::`: plain English words, program
//! names (`chown`, `slapd`), ALLCAPS macros and acronyms (`XML_DTD`,
//! `RFC6125`), file names (`tree.c`), CVE ids and versions are never taken.
//! *Strongly code-like* (a bare `in X`): an underscore next to a lowercase
//! letter, a lowercase start with a later capital (`xmlPatMatch`, not
//! `LibTIFF`) or `::`. Sanitizer interceptors (`__interceptor_memcpy`,
//! `__asan_*`) name the tool's wrapper, not the library's code, and are
//! dropped.

/// Words after which a bare `in X` is taken as naming a function.
const FOLLOWERS: &[&str] = &[
    "via",
    "when",
    "because",
    "allows",
    "allow",
    "leads",
    "leading",
    "that",
    "which",
    "could",
    "can",
    "may",
    "might",
    "resulting",
    "causing",
    "during",
    "while",
];

/// Prefixes of sanitizer runtime functions a crash trace may name.
const SANITIZER_PREFIXES: &[&str] = &[
    "__interceptor_",
    "__asan_",
    "__msan_",
    "__ubsan_",
    "__sanitizer_",
];

/// Source file extensions for the `X in file.c` context.
const SOURCE_EXTENSIONS: &[&str] = &[
    ".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".c++", ".inc",
];

/// One whitespace-separated word of the description, cut down to its core.
#[derive(Debug, Clone)]
struct Word<'a> {
    /// The word without surrounding quotes, brackets and punctuation, and
    /// without a trailing `()`.
    core: &'a str,
    /// The word ended in `()` (before punctuation).
    call: bool,
    /// Punctuation after the core ends a clause (`,` `;` `.` `:`).
    ends_clause: bool,
}

fn words(text: &str) -> Vec<Word<'_>> {
    const LEAD: &[char] = &['(', '[', '"', '\'', '`', '*', '<', '{'];
    const TRAIL: &[char] = &[
        ',', ';', ':', '.', '!', '?', '"', '\'', '`', ']', '*', '>', '}',
    ];
    text.split_whitespace()
        .map(|raw| {
            let w = raw.trim_start_matches(LEAD);
            let trimmed = w.trim_end_matches(TRAIL);
            let ends_clause =
                trimmed.len() < w.len() && w[trimmed.len()..].contains([',', ';', '.', ':']);
            let (core, call) = match trimmed.strip_suffix("()") {
                Some(c) => (c.trim_end_matches(TRAIL), true),
                None => {
                    // "function)" from "(the foo function)": an unmatched
                    // closing bracket is punctuation
                    let c = if trimmed.ends_with(')') && !trimmed.contains('(') {
                        trimmed.trim_end_matches(')').trim_end_matches(TRAIL)
                    } else {
                        trimmed
                    };
                    (c, false)
                }
            };
            Word {
                core,
                call,
                ends_clause: ends_clause || raw.ends_with([',', ';', '.', ':']),
            }
        })
        .collect()
}

/// `[A-Za-z_][A-Za-z0-9_]*`, or such identifiers joined by `::`.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split("::").all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn has_lowercase(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_lowercase())
}

/// An underscore beside a lowercase letter (`xml_parse`, `XML_ResumeParser`,
/// `_nc_wrap_entry`), not an ALLCAPS macro (`XML_DTD`).
fn snake(s: &str) -> bool {
    s.contains('_') && has_lowercase(s)
}

/// A lowercase letter followed by a capital (`xmlUnlinkNode`, `makeRoom`,
/// `avifImageRGBToYUV`).
fn camel(s: &str) -> bool {
    s.as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// Letters, digits, then letters again (`display444as420`, `t2p`).
fn letter_digit_letter(s: &str) -> bool {
    let (mut letter, mut digits_after_letter) = (false, false);
    for c in s.bytes() {
        if c.is_ascii_alphabetic() {
            if digits_after_letter {
                return true;
            }
            letter = true;
        } else if c.is_ascii_digit() {
            digits_after_letter = letter;
        } else {
            (letter, digits_after_letter) = (false, false);
        }
    }
    false
}

fn sanitizer(s: &str) -> bool {
    SANITIZER_PREFIXES.iter().any(|p| s.starts_with(p))
}

/// Spelled like a function in code, not like a word, a macro or a product.
fn code_like(s: &str) -> bool {
    is_identifier(s)
        && s.len() >= 3
        && !sanitizer(s)
        && (s.contains("::")
            || snake(s)
            || camel(s)
            || (has_lowercase(s) && letter_digit_letter(s)))
}

/// Code-like enough to be taken after a bare `in`: not a product name
/// (`LibTIFF`, `OpenLDAP`, `MiniZip`).
fn strongly_code_like(s: &str) -> bool {
    code_like(s)
        && s.len() >= 4
        && (s.contains("::")
            || snake(s)
            || s.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && camel(s))
}

/// A source file (`tree.c`, `posix/regexec.c`, `/libheif/exif.cc`, `x.c:7916`).
fn is_source_file(s: &str) -> bool {
    let s = s.split(':').next().unwrap_or(s);
    SOURCE_EXTENSIONS.iter().any(|e| {
        s.len() > e.len() && s.ends_with(e) && {
            let stem = &s[..s.len() - e.len()];
            stem.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '+'))
        }
    })
}

/// The candidate function names a description gives, deduplicated and sorted.
pub fn function_names(description: &str) -> Vec<String> {
    let w = words(description);
    let mut out: Vec<String> = Vec::new();
    let word = |i: usize| w.get(i).map(|x| x.core.to_ascii_lowercase());
    let is = |i: usize, what: &str| word(i).as_deref() == Some(what);
    for (i, x) in w.iter().enumerate() {
        let core = x.core;
        // X()
        if x.call && is_identifier(core) && !sanitizer(core) && core.len() >= 2 {
            out.push(core.to_owned());
            continue;
        }
        if !code_like(core) {
            continue;
        }
        // the X function / X functions
        let function_after = !x.ends_clause && (is(i + 1, "function") || is(i + 1, "functions"));
        // function X
        let function_before =
            i > 0 && (is(i - 1, "function") || is(i - 1, "functions")) && !w[i - 1].ends_clause;
        if function_after || function_before {
            out.push(core.to_owned());
            continue;
        }
        // X in file.c, X and Y in file.c
        if !x.ends_clause && is(i + 1, "in") {
            let file = if is(i + 2, "the") { i + 3 } else { i + 2 };
            if w.get(file).is_some_and(|f| is_source_file(f.core)) {
                out.push(core.to_owned());
                out.extend(conjoined_before(&w, i, code_like));
                continue;
            }
        }
        // in X via …, occurs in X and Y because …
        if i > 0 && is(i - 1, "in") && !w[i - 1].ends_clause && strongly_code_like(core) {
            let mut list = vec![core.to_owned()];
            let mut j = i;
            // X and Y / X, Y and Z
            while !w[j].ends_clause
                && is(j + 1, "and")
                && w.get(j + 2).is_some_and(|y| strongly_code_like(y.core))
            {
                j += 2;
                list.push(w[j].core.to_owned());
            }
            let last = &w[j];
            let followed = last.ends_clause
                || j + 1 == w.len()
                || word(j + 1).is_some_and(|n| FOLLOWERS.contains(&n.as_str()));
            if followed {
                out.extend(list);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The code-like identifiers joined to word `i` by `and` or commas before
/// it ("A, B and C in file.c" → A, B for C).
fn conjoined_before(w: &[Word<'_>], i: usize, shape: fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut j = i;
    loop {
        if j >= 2 && w[j - 1].core.eq_ignore_ascii_case("and") && shape(w[j - 2].core) {
            j -= 2;
        } else if j >= 1 && w[j - 1].ends_clause && shape(w[j - 1].core) && !out.is_empty() {
            j -= 1;
        } else {
            break;
        }
        out.push(w[j].core.to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real description sentences (Grype and Trivy reports of nginx, NVD),
    /// with the names they give.
    #[test]
    fn names_from_real_descriptions() {
        let cases: &[(&str, &[&str])] = &[
            ("MiniZip in zlib through 1.3 has an integer overflow and resultant heap-based buffer overflow in zipOpenNewFileInZip4_64 via a long filename, comment, or extra field. NOTE: MiniZip is not a supported part of the zlib product.", &["zipOpenNewFileInZip4_64"]),
            ("The nss_parse_ciphers function in libraries/libldap/tls_m.c in OpenLDAP does not properly parse OpenSSL-style multi-keyword mode cipher strings", &["nss_parse_ciphers"]),
            ("In LibTIFF 4.0.8, there is a heap-based use-after-free in the t2p_writeproc function in tiff2pdf.c.", &["t2p_writeproc"]),
            ("ijg-libjpeg before 9d, as used in tiff2pdf (from LibTIFF) and other products, does not check for a NULL pointer at a certain place in jpeg_fdct_16x16 in jfdctint.c.", &["jpeg_fdct_16x16"]),
            ("In the GNU C Library (aka glibc or libc6) through 2.29, check_dst_limits_calc_pos_1 in posix/regexec.c has Uncontrolled Recursion, as demonstrated by '(\\227|)(\\\\1\\\\1|t1|\\\\\\2537)+' in grep.", &["check_dst_limits_calc_pos_1"]),
            ("xmlXIncludeAddNode in xinclude.c in libxml2 before 2.11.0 has a use-after-free.", &["xmlXIncludeAddNode"]),
            ("A flaw was found in tiffcrop, a program distributed by the libtiff package. A specially crafted tiff file can lead to an out-of-bounds read in the extractImageSection function in tools/tiffcrop.c, resulting in a denial of service", &["extractImageSection"]),
            ("A vulnerability was found in openldap. This security flaw causes a null pointer dereference in ber_memalloc_x() function.", &["ber_memalloc_x"]),
            ("A heap-buffer-overflow vulnerability was found in LibTIFF, in extractImageSection() at tools/tiffcrop.c:7916 and tools/tiffcrop.c:7801.", &["extractImageSection"]),
            ("VideoLAN dav1d before 1.2.0 has a thread_task.c race condition that can lead to an application crash, related to dav1d_decode_frame_exit.", &[]),
            ("Xmlsoft Libxml2 v2.11.0 was discovered to contain an out-of-bounds read via the xmlSAX2StartElement() function at /libxml2/SAX2.c.", &["xmlSAX2StartElement"]),
            ("AOMedia v3.0.0 to v3.5.0 was discovered to contain an invalid read memory access via the component assign_frame_buffer_p in av1/common/av1_common_int.h.", &["assign_frame_buffer_p"]),
            ("libxml2 through 2.11.5 has a use-after-free that can only occur after a certain memory allocation fails. This occurs in xmlUnlinkNode in tree.c.", &["xmlUnlinkNode"]),
            ("libheif v1.17.5 was discovered to contain a segmentation violation via the function find_exif_tag at /libheif/exif.cc.", &["find_exif_tag"]),
            ("NCurse v6.4-20230418 was discovered to contain a segmentation fault via the component _nc_wrap_entry().", &["_nc_wrap_entry"]),
            ("An out-of-memory flaw was found in libtiff that could be triggered by passing a crafted tiff file to the TIFFRasterScanlineSize64() API.", &["TIFFRasterScanlineSize64"]),
            ("Increasing the resolution of video frames, while performing a multi-threaded encode, can result in a heap overflow in av1_loop_restoration_dealloc().", &["av1_loop_restoration_dealloc"]),
            ("libheif <= 1.17.6 contains a memory leak in the function JpegEncoder::Encode. This flaw allows an attacker to cause a denial of service attack.", &["JpegEncoder::Encode"]),
            ("Heap Buffer Overflow vulnerability in Libde265 v1.0.15 allows attackers to crash the application via crafted payload to display444as420 function at sdl.cc", &["display444as420"]),
            ("Heap Buffer Overflow vulnerability in Libde265 v1.0.15 allows attackers to crash the application via crafted payload to __interceptor_memcpy function.", &[]),
            ("An issue was discovered in libexpat before 2.6.4. There is a crash within the XML_ResumeParser function because XML_StopParser can stop/suspend an unstarted parser.", &["XML_ResumeParser"]),
            ("libxml2 before 2.12.10 and 2.13.x before 2.13.6 has a use-after-free in xmlSchemaIDCFillNodeTables and xmlSchemaBubbleIDCNodeTables in xmlschemas.c.", &["xmlSchemaBubbleIDCNodeTables", "xmlSchemaIDCFillNodeTables"]),
            ("In libxml2 before 2.13.8 and 2.14.x before 2.14.2, out-of-bounds memory access can occur in the Python API (Python bindings) because of an incorrect return value. This occurs in xmlPythonFileRead and xmlPythonFileReadRaw because of a difference between bytes and characters.", &["xmlPythonFileRead", "xmlPythonFileReadRaw"]),
            ("In libavif before 1.3.0, makeRoom in stream.c has an integer overflow and resultant buffer overflow in stream->offset+size.", &["makeRoom"]),
            ("In libavif before 1.3.0, avifImageRGBToYUV in reformat.c has integer overflows in multiplications involving rgbRowBytes, yRowBytes, uRowBytes, and vRowBytes.", &["avifImageRGBToYUV"]),
            ("While running the genrb binary, the 'subtag' struct overflowed at the SRBRoot::addTag function.", &["SRBRoot::addTag"]),
            ("A flaw was found in GNU Coreutils. The sort utility's begfield() function is vulnerable to a heap buffer under-read.", &["begfield"]),
            ("An issue was discovered in MIT Kerberos 5 (aka krb5) through 1.16. There is a variable \"dbentry->n_key_data\" in kadmin/dbutil/dump.c that can store 16-bit data but unknowingly the developer has assigned a \"u4\" variable to it", &[]),
            ("libexpat through 2.5.0 allows recursive XML Entity Expansion if XML_DTD is undefined at compile time.", &[]),
            ("_is_safe in the File::Temp module for Perl does not properly handle symlinks.", &[]),
            ("In libxslt 1.1.29 and earlier, the EXSLT math.random function was not initialized with a random seed during startup", &[]),
            ("initscripts in rPath Linux 1 sets insecure permissions for the /var/log/btmp file", &[]),
            ("In GNU Coreutils through 8.29, chown-core.c in chown and chgrp does not prevent replacement of a plain file with a symlink", &[]),
            ("libiberty/rust-demangle.c in GNU GCC 11.2 allows stack consumption in demangle_const, as demonstrated by nm-new.", &["demangle_const"]),
            ("The HTTP/2 protocol allows a denial of service (server resource consumption) because request cancellation can reset many streams quickly", &[]),
            ("Passing a crafted tiff file to TIFFOpen() API may allow a remote attacker to cause a denial of service", &["TIFFOpen"]),
            ("When libcurl is asked to perform automatic gzip decompression of content-encoded HTTP responses with the `CURLOPT_ACCEPT_ENCODING` option, **using zlib 1.2.0.3 or older**", &[]),
            ("libexpat through 2.6.1 allows an XML Entity Expansion attack when there is isolated use of external parsers (created via XML_ExternalEntityParserCreate).", &[]),
        ];
        for (text, want) in cases {
            assert_eq!(function_names(text), *want, "{text}");
        }
    }

    #[test]
    fn shapes() {
        for (s, code, strong) in [
            ("xmlPatMatch", true, true),
            ("LibTIFF", true, false),
            ("OpenLDAP", true, false),
            ("MiniZip", true, false),
            ("XML_DTD", false, false),
            ("RFC6125", false, false),
            ("chown", false, false),
            ("tree.c", false, false),
            ("CVE-2023-45853", false, false),
            ("display444as420", true, false),
            ("XML_ResumeParser", true, true),
            ("libxml2", false, false),
        ] {
            assert_eq!(code_like(s), code, "{s}");
            assert_eq!(strongly_code_like(s), strong, "{s}");
        }
        assert!(is_source_file("tools/tiffcrop.c:7916"));
        assert!(is_source_file("/libheif/exif.cc"));
        assert!(!is_source_file("libz.so.1"));
        assert!(!is_source_file(".c"));
    }
}

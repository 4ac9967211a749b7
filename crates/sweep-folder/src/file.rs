//! Reading and writing the folder's JSON files: versioned, atomic, with errors that name the
//! file, line and key.
//!
//! Every file is written as `{"format": N, "written_by": "sweep X.Y.Z", …its fields}`. A
//! reader first reads those two keys: a newer format is refused by name (its fields may mean
//! something else), a missing `format` is format 1 (sweep 0.1.0, whose files had none). Then
//! the file is read into its type; unknown keys are ignored, so a file with more fields than
//! this build knows (a previous format's leftovers) still reads.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::FolderError;

/// Seconds since the Unix epoch, as the folder's `*_at` fields hold them.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// A Unix time in whole seconds as UTC `(year, month, day, hour, minute, second)`, for the
/// times the folder's files and exports show (H. Hinnant's civil-from-days algorithm).
pub fn civil_utc(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[derive(Serialize)]
struct Stamped<'a, T> {
    format: u32,
    written_by: &'a str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct Header {
    format: Option<serde_json::Value>,
    #[serde(default)]
    written_by: Option<String>,
}

/// `value` as the file's bytes, with the format header.
pub fn to_bytes<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>, FolderError> {
    let written_by = crate::build::written_by();
    let stamped = Stamped { format: crate::FORMAT, written_by: &written_by, body: value };
    let mut bytes = serde_json::to_vec_pretty(&stamped)
        .map_err(|e| FolderError::Write { path: path.to_owned(), source: std::io::Error::other(e) })?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `value` with its format header, atomically.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), FolderError> {
    write_atomically(path, &to_bytes(path, value)?)
}

/// Writes through a temporary name in the same folder and a rename, so that a reader (or a
/// crash) never sees half a file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), FolderError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(|source| FolderError::Write { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        FolderError::Write { path: path.to_owned(), source }
    })
}

/// Writes `items` as JSON lines (no format header: each line is a record), atomically.
pub fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<(), FolderError> {
    let mut lines = Vec::new();
    for item in items {
        serde_json::to_writer(&mut lines, item)
            .map_err(|e| FolderError::Write { path: path.to_owned(), source: e.into() })?;
        lines.push(b'\n');
    }
    write_atomically(path, &lines)
}

/// Creates `path` with `contents`; an existing file is an error, never overwritten.
pub fn create_new(path: &Path, contents: &[u8]) -> Result<(), FolderError> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| FolderError::Write { path: path.to_owned(), source })?;
    file.write_all(contents).map_err(|source| FolderError::Write { path: path.to_owned(), source })
}

/// Reads the file into `T`, checking its format first.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, FolderError> {
    let bytes = std::fs::read(path).map_err(|source| FolderError::Read { path: path.to_owned(), source })?;
    parse(path, &bytes)
}

/// [`read`], with a missing file as `None`.
pub fn read_optional<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, FolderError> {
    match std::fs::read(path) {
        Ok(bytes) => parse(path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FolderError::Read { path: path.to_owned(), source }),
    }
}

/// The format a file's header says (1 when it has none).
pub fn format_of(path: &Path, bytes: &[u8]) -> Result<u32, FolderError> {
    let header: Header = deserialize(path, bytes)?;
    let format = match header.format {
        None => 1,
        Some(value) => value.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| {
            let (line, column) = position_of_key(bytes, "format");
            FolderError::Parse {
                path: path.to_owned(),
                line,
                column,
                key: "format".into(),
                message: format!("a format version is a whole number, not {value}"),
            }
        })?,
    };
    if format > crate::FORMAT {
        return Err(FolderError::Newer {
            path: path.to_owned(),
            format,
            written_by: header.written_by.unwrap_or_else(|| "a newer sweep".into()),
        });
    }
    Ok(format)
}

/// The bytes of a file named `path`, read into `T` after its format is checked.
pub fn parse<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, FolderError> {
    format_of(path, bytes)?;
    deserialize(path, bytes)
}

fn deserialize<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, FolderError> {
    let parse_error = |key: String, inner: serde_json::Error| FolderError::Parse {
        path: path.to_owned(),
        line: inner.line(),
        column: inner.column(),
        key: if key == "." { String::new() } else { key },
        message: inner.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let key = e.path().to_string();
        parse_error(key, e.into_inner())
    })?;
    // Nothing but white space after the document.
    de.end().map_err(|e| parse_error(String::new(), e))?;
    Ok(value)
}

/// Where `"key"` first appears (1-based line and column), for errors found after parsing.
fn position_of_key(bytes: &[u8], key: &str) -> (usize, usize) {
    let text = String::from_utf8_lossy(bytes);
    let needle = format!("\"{key}\"");
    let Some(offset) = text.find(&needle) else { return (1, 1) };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Thing {
        name: String,
        count: u32,
    }

    fn path() -> &'static Path {
        Path::new("jobs/j/thing.json")
    }

    #[test]
    fn a_file_is_written_with_its_format_and_read_back() {
        let thing = Thing { name: "a".into(), count: 3 };
        let bytes = to_bytes(path(), &thing).expect("serialises");
        let text = String::from_utf8(bytes.clone()).expect("UTF-8");
        assert!(
            text.starts_with(&format!("{{\n  \"format\": {},\n  \"written_by\": \"sweep ", crate::FORMAT)),
            "{text}"
        );
        assert_eq!(parse::<Thing>(path(), &bytes).expect("reads"), thing);
    }

    #[test]
    fn a_file_without_a_format_is_format_one_and_reads() {
        let bytes = br#"{"name": "a", "count": 3, "manifest_version": 1}"#;
        assert_eq!(format_of(path(), bytes).expect("a header"), 1);
        assert_eq!(parse::<Thing>(path(), bytes).expect("reads").count, 3);
    }

    #[test]
    fn a_newer_format_is_refused_with_who_wrote_it() {
        let bytes = br#"{"format": 9, "written_by": "sweep 7.1.0", "name": "a", "count": 3}"#;
        let error = parse::<Thing>(path(), bytes).expect_err("refused");
        let message = error.to_string();
        assert!(matches!(error, FolderError::Newer { format: 9, .. }), "{error:?}");
        assert!(message.contains("written by sweep 7.1.0 in format 9"), "{message}");
        assert!(message.contains(&format!("this is sweep {}", crate::build::VERSION)), "{message}");
    }

    #[test]
    fn parse_errors_name_the_file_line_and_key() {
        let bytes = b"{\n  \"name\": \"a\",\n  \"count\": \"three\"\n}";
        let error = parse::<Thing>(path(), bytes).expect_err("a string is not a count");
        let FolderError::Parse { line, key, .. } = &error else { panic!("{error:?}") };
        assert_eq!((*line, key.as_str()), (3, "count"));
        assert!(error.to_string().starts_with("jobs/j/thing.json:3:"), "{error}");
        let truncated = parse::<Thing>(path(), b"{\"name\": \"a\", \"cou").expect_err("truncated");
        assert!(matches!(truncated, FolderError::Parse { line: 1, .. }), "{truncated:?}");
        let format = parse::<Thing>(path(), b"{\n\"format\": \"x\"}").expect_err("a bad format");
        assert!(matches!(format, FolderError::Parse { line: 2, .. }), "{format:?}");
    }

    #[test]
    fn writes_are_atomic_and_create_new_never_overwrites() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let file = dir.path().join("a.json");
        write(&file, &Thing { name: "a".into(), count: 1 }).expect("written");
        write(&file, &Thing { name: "b".into(), count: 2 }).expect("replaced");
        assert_eq!(read::<Thing>(&file).expect("reads").name, "b");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("lists").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        assert!(create_new(&file, b"{}").is_err());
        assert_eq!(read_optional::<Thing>(&dir.path().join("missing.json")).expect("no error"), None);
    }
}

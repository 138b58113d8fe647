//! `HostDatastoreBrowser.SearchDatastore_Task`: lists the files uploaded through `/folder`.

use std::collections::BTreeMap;

use vsphere_wire::fault::{FaultField, VimFault};

use super::entities::{DATASTORE, DATASTORE_NAME};
use super::faults;
use super::transfer::FileStore;
use super::value::VimValue;

/// What a folder directly holds: files (size, modification time) and subfolders (the newest
/// modification time below them).
#[derive(Debug, Default)]
struct Listing {
    files: BTreeMap<String, (u64, String)>,
    folders: BTreeMap<String, String>,
}

/// `FileNotFound` for a datastore path that does not exist.
fn file_not_found(path: &str) -> VimFault {
    VimFault::new("FileNotFound", format!("File {path} was not found"))
        .with_field("file", FaultField::Text(path.into()))
}

/// Splits `[datastore] folder/sub` into the datastore name and the folder, without slashes.
fn parse_datastore_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.trim().strip_prefix('[')?;
    let (name, folder) = rest.split_once(']')?;
    Some((name, folder.trim().trim_matches('/')))
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character).
fn glob(pattern: &[char], name: &[char]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some('*'), _) => {
            glob(&pattern[1..], name) || (!name.is_empty() && glob(pattern, &name[1..]))
        }
        (Some('?'), Some(_)) => glob(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Whether `name` matches any of `patterns` (no patterns: everything).
fn matches(patterns: &[String], name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| glob(&p.chars().collect::<Vec<_>>(), &name))
}

/// Every folder of the datastore (by path, root is "") with what it directly holds.
fn listings(files: &FileStore) -> BTreeMap<String, Listing> {
    let mut out: BTreeMap<String, Listing> = BTreeMap::new();
    out.entry(String::new()).or_default();
    for (key, file) in files {
        let mut parts = key.splitn(3, '|');
        let (Some(_dc), Some(ds), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(rel) = path.strip_prefix("/folder/") else {
            continue;
        };
        if ds != DATASTORE_NAME || rel.is_empty() {
            continue;
        }
        let segments: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let Some((file_name, dirs)) = segments.split_last() else {
            continue;
        };
        let mut folder = String::new();
        for dir in dirs {
            let newest = out
                .entry(folder.clone())
                .or_default()
                .folders
                .entry((*dir).to_string())
                .or_default();
            if *newest < file.modified {
                newest.clone_from(&file.modified);
            }
            if !folder.is_empty() {
                folder.push('/');
            }
            folder.push_str(dir);
        }
        out.entry(folder)
            .or_default()
            .files
            .insert((*file_name).to_string(), (file.size, file.modified.clone()));
    }
    out
}

/// One `HostDatastoreBrowserSearchResults` for `folder`.
fn results(folder: &str, listing: &Listing, patterns: &[String]) -> VimValue {
    let mut entries = Vec::new();
    for (name, modified) in listing.folders.iter().filter(|(n, _)| matches(patterns, n)) {
        entries.push(VimValue::Data(
            "FolderFileInfo",
            vec![
                ("path", VimValue::str(name)),
                ("fileSize", VimValue::Long(0)),
                ("modification", VimValue::DateTime(modified.clone())),
            ],
        ));
    }
    for (name, (size, modified)) in listing.files.iter().filter(|(n, _)| matches(patterns, n)) {
        entries.push(VimValue::Data(
            "FileInfo",
            vec![
                ("path", VimValue::str(name)),
                (
                    "fileSize",
                    VimValue::Long(i64::try_from(*size).unwrap_or(i64::MAX)),
                ),
                ("modification", VimValue::DateTime(modified.clone())),
            ],
        ));
    }
    let folder_path = if folder.is_empty() {
        format!("[{DATASTORE_NAME}]")
    } else {
        format!("[{DATASTORE_NAME}] {folder}")
    };
    VimValue::Data(
        "HostDatastoreBrowserSearchResults",
        vec![
            ("datastore", VimValue::moref("Datastore", DATASTORE)),
            ("folderPath", VimValue::str(folder_path)),
            ("file", VimValue::Array("FileInfo", entries)),
        ],
    )
}

/// Searches `datastore_path` for `patterns`; with `recursive`, every folder below it too.
pub(crate) fn search(
    files: &FileStore,
    datastore_path: &str,
    patterns: &[String],
    recursive: bool,
) -> Result<VimValue, VimFault> {
    let (name, folder) = parse_datastore_path(datastore_path)
        .ok_or_else(|| faults::invalid_argument("datastorePath"))?;
    if name != DATASTORE_NAME {
        return Err(file_not_found(datastore_path));
    }
    let all = listings(files);
    let listing = all
        .get(folder)
        .ok_or_else(|| file_not_found(datastore_path))?;
    if !recursive {
        return Ok(results(folder, listing, patterns));
    }
    let below =
        |path: &str| folder.is_empty() || path == folder || path.starts_with(&format!("{folder}/"));
    let every = all
        .iter()
        .filter(|(path, _)| below(path))
        .map(|(path, listing)| results(path, listing, patterns))
        .collect();
    Ok(VimValue::Array("HostDatastoreBrowserSearchResults", every))
}

#[cfg(test)]
mod tests {
    use super::super::transfer::StoredFile;
    use super::*;

    fn store(paths: &[(&str, u64)]) -> FileStore {
        paths
            .iter()
            .map(|(p, size)| {
                (
                    format!("Datacenter|{DATASTORE_NAME}|/folder/{p}"),
                    StoredFile {
                        size: *size,
                        sha256: String::new(),
                        modified: "2026-11-30T12:00:00.000000Z".into(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn lists_direct_children_with_sizes_and_folders() {
        let files = store(&[("a.iso", 10), ("dir/b.txt", 3), ("dir/sub/c.txt", 4)]);
        let root = search(&files, "[datastore1]", &["*".into()], false)
            .expect("root")
            .to_json();
        assert_eq!(root["folderPath"], "[datastore1]");
        assert_eq!(root["file"][0]["_typeName"], "FolderFileInfo");
        assert_eq!(root["file"][0]["path"], "dir");
        assert_eq!(root["file"][1]["path"], "a.iso");
        assert_eq!(root["file"][1]["fileSize"], 10);
        assert_eq!(
            root["file"][1]["modification"],
            "2026-11-30T12:00:00.000000Z"
        );
        let dir = search(&files, "[datastore1] dir", &["*.txt".into()], false)
            .expect("dir")
            .to_json();
        assert_eq!(dir["file"].as_array().map(Vec::len), Some(1));
        assert_eq!(dir["file"][0]["path"], "b.txt");
        let all = search(&files, "[datastore1] dir", &[], true)
            .expect("recursive")
            .to_json();
        assert_eq!(all.as_array().map(Vec::len), Some(2));
        assert_eq!(all[1]["folderPath"], "[datastore1] dir/sub");
    }

    #[test]
    fn unknown_datastores_and_folders_are_file_not_found() {
        let files = store(&[("a.iso", 1)]);
        for path in ["[other]", "[datastore1] missing"] {
            let fault = search(&files, path, &[], false)
                .map(|_| ())
                .expect_err("must fail");
            assert_eq!(fault.type_name, "FileNotFound", "{path}");
        }
        assert_eq!(
            search(&files, "no brackets", &[], false)
                .map(|_| ())
                .expect_err("must fail")
                .type_name,
            "InvalidArgument"
        );
    }
}

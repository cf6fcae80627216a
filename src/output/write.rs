//! Writing one object: a PS3.10 file (preamble, "DICM", File Meta Information, data set in Explicit VR
//! Little Endian) encoded by dicom-object, made atomic as the CLI's outputs are (src/cli/atomic.rs): a
//! hidden temporary file in the same folder, synced, then renamed to its final name, so a PACS watching
//! the folder never picks up half a file. File names come from the new SOP Instance UID only.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::uids;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::InMemDicomObject;

use super::error::OutputError;

/// The Implementation Class UID of the files this runtime writes (PS3.7 D.3.3.2): a fixed UID under the
/// 2.25 root, made once from a random UUID for this project.
const IMPLEMENTATION_CLASS_UID: &str = "2.25.197431953713461711447462579423841729659";
/// Implementation Version Name (SH: at most 16 characters).
const IMPLEMENTATION_VERSION_NAME: &str = concat!("UNIMED_", env!("CARGO_PKG_VERSION"));

/// The file name of an object: a prefix for its kind and its SOP Instance UID (no patient data).
pub(crate) fn file_name(prefix: &str, sop_instance_uid: &str) -> String {
    format!("{prefix}{sop_instance_uid}.dcm")
}

/// Writes `obj` as `dir/name` atomically.
pub(crate) fn write(dir: &Path, name: &str, obj: InMemDicomObject) -> Result<PathBuf, OutputError> {
    let path = dir.join(name);
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
                .implementation_version_name(IMPLEMENTATION_VERSION_NAME),
        )
        .map_err(|e| OutputError::Encode {
            what: format!("{name}: file meta information"),
            message: e.to_string(),
        })?;
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |source| OutputError::Io {
        path: path.clone(),
        source,
    };
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)
            .map_err(io)?;
        file.write_all(&mut out).map_err(|e| OutputError::Encode {
            what: name.to_string(),
            message: e.to_string(),
        })?;
        out.flush().map_err(io)?;
        out.sync_all().map_err(io)?;
        std::fs::rename(&temp, &path).map_err(io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map(|()| path.clone())
}

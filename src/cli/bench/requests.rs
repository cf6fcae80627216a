//! The fixed representative request of each task (`benches/requests.json`, compiled in, shared with the
//! PyTorch peer `export/unimed_export/bench/torch_eager.py`) and its image (`benches/data/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use unimed_edge::{Request, Task};

const REQUESTS_JSON: &str = include_str!("../../../benches/requests.json");
/// The image named by `requests.json` ("data/chest_512.png"): a synthetic 512×512 grayscale radiograph.
const IMAGE_BYTES: &[u8] = include_bytes!("../../../benches/data/chest_512.png");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestsFile {
    #[allow(dead_code)]
    about: String,
    image: String,
    new_tokens: usize,
    tasks: BTreeMap<String, TaskRequest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskRequest {
    text: Option<String>,
    #[serde(rename = "box")]
    bbox: Option<[f64; 4]>,
}

/// The benchmark's request set.
pub struct BenchRequests {
    file: RequestsFile,
    image: PathBuf,
}

impl BenchRequests {
    /// Parses the compiled-in set; `image` overrides its image, else the compiled-in one is written
    /// into `work_dir` (decoding it from a file is part of what is measured).
    pub fn load(image: Option<&Path>, work_dir: &Path) -> Result<Self> {
        let file: RequestsFile =
            serde_json::from_str(REQUESTS_JSON).context("benches/requests.json (compiled in)")?;
        let image = match image {
            Some(p) => p.to_path_buf(),
            None => {
                let name = Path::new(&file.image)
                    .file_name()
                    .map(|n| n.to_os_string())
                    .unwrap_or_default();
                let path = work_dir.join(name);
                std::fs::create_dir_all(work_dir)
                    .with_context(|| format!("creating {}", work_dir.display()))?;
                std::fs::write(&path, IMAGE_BYTES)
                    .with_context(|| format!("writing {}", path.display()))?;
                path
            }
        };
        Ok(BenchRequests { file, image })
    }

    /// Tokens each request generates unless told otherwise.
    pub fn default_new_tokens(&self) -> usize {
        self.file.new_tokens
    }

    pub fn image(&self) -> &Path {
        &self.image
    }

    /// The request of `task`, generating at most `new_tokens` tokens.
    pub fn request(&self, task: Task, new_tokens: usize, needs_image: bool) -> Result<Request> {
        let Some(spec) = self.file.tasks.get(task.name()) else {
            bail!("benches/requests.json has no request for task \"{task}\"");
        };
        let mut request = Request::new(task);
        if needs_image {
            request = request.with_image_path(&self.image);
        }
        request.text = spec.text.clone();
        request.bbox = spec.bbox;
        request.generation.max_new_tokens = Some(new_tokens);
        Ok(request)
    }
}

/// Parses `--tasks`: `all` or a comma-separated list of task names.
pub fn parse_tasks(list: &str) -> Result<Vec<Task>> {
    if list.trim() == "all" {
        return Ok(Task::ALL.to_vec());
    }
    let mut tasks = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let task: Task = name.parse().with_context(|| format!("--tasks {list:?}"))?;
        if !tasks.contains(&task) {
            tasks.push(task);
        }
    }
    if tasks.is_empty() {
        bail!(
            "--tasks {list:?}: expected `all` or a comma-separated list of {}",
            Task::ALL.map(Task::name).join(", ")
        );
    }
    Ok(tasks)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic in a test is its failure message
mod tests {
    use super::*;

    #[test]
    fn every_task_has_a_request_and_the_image_is_a_png() {
        let dir = std::env::temp_dir().join(format!("unimed-bench-req-{}", std::process::id()));
        let set = BenchRequests::load(None, &dir).unwrap();
        for task in Task::ALL {
            let r = set.request(task, 7, true).unwrap();
            assert_eq!(r.generation.max_new_tokens, Some(7));
        }
        assert_eq!(
            set.request(Task::Reg, 1, true).unwrap().bbox,
            Some([96.0, 128.0, 240.0, 400.0])
        );
        assert!(std::fs::read(set.image()).unwrap().starts_with(b"\x89PNG"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn task_lists_parse() {
        assert_eq!(parse_tasks("all").unwrap().len(), Task::ALL.len());
        assert_eq!(
            parse_tasks("vqa, rec,vqa").unwrap(),
            vec![Task::Vqa, Task::Rec]
        );
        assert!(parse_tasks("vqa,nope").is_err());
        assert!(parse_tasks(" , ").is_err());
    }
}

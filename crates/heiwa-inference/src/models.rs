//! The model manager: GGUF files imported into the app's models directory,
//! listed with what their own metadata says, removed, and one chosen as the
//! default. A file is checked before it is copied in (GGUF header and
//! metadata, then a load by llama.cpp, which bounds-checks every tensor); a
//! copy is atomic (temp file, then rename).

use llama_cpp_2::gguf::GgufContext;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path} is not a readable GGUF model (bad header or metadata)")]
    NotGguf { path: PathBuf },
    #[error("{path} has GGUF metadata but llama.cpp cannot load it (truncated or corrupt?): {reason}")]
    Unloadable { path: PathBuf, reason: String },
    #[error("{0} is not a .gguf file")]
    NotGgufName(PathBuf),
    #[error("a model named {0} is already imported; remove it first")]
    Exists(String),
    #[error("no model named {0} (see `heiwa models list`)")]
    Unknown(String),
    #[error("models directory I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a GGUF file says about itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, ts_rs::TS)]
pub struct ModelInfo {
    pub id: String,
    pub path: PathBuf,
    #[ts(type = "number")]
    pub size_bytes: u64,
    pub architecture: Option<String>,
    pub name: Option<String>,
    /// As the file labels it, e.g. "0.5B".
    pub parameters: Option<String>,
    pub quantization: Option<String>,
    pub context_length: Option<u32>,
    pub has_chat_template: bool,
    pub is_default: bool,
    /// The donor keeps it: a model the tenant's catalogue dropped is not deleted.
    pub pinned: bool,
}

// gguf_type values (ggml's gguf.h); reading a value with the wrong type aborts, so check first.
const GGUF_TYPE_UINT32: u32 = 4;
const GGUF_TYPE_STRING: u32 = 8;

fn string(gguf: &GgufContext, key: &str) -> Option<String> {
    let at = gguf.find_key(key);
    (at >= 0 && gguf.kv_type(at) == GGUF_TYPE_STRING).then(|| gguf.val_str(at).map(str::to_string)).flatten()
}

fn uint32(gguf: &GgufContext, key: &str) -> Option<u32> {
    let at = gguf.find_key(key);
    (at >= 0 && gguf.kv_type(at) == GGUF_TYPE_UINT32).then(|| gguf.val_u32(at))
}

/// llama.cpp's `general.file_type` numbers for the common quantizations.
fn quantization_name(file_type: u32) -> String {
    match file_type {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        other => return format!("type {other}"),
    }
    .into()
}

/// Read a GGUF file's metadata (not its weights).
pub fn inspect(path: &Path) -> Result<ModelInfo, ModelError> {
    let size_bytes = std::fs::metadata(path).map_err(|source| ModelError::Io { path: path.into(), source })?.len();
    let mut magic = [0u8; 4];
    use std::io::Read;
    let magic_ok = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"GGUF";
    let gguf = magic_ok
        .then(|| GgufContext::from_file(path))
        .flatten()
        .ok_or_else(|| ModelError::NotGguf { path: path.into() })?;
    let architecture = string(&gguf, "general.architecture");
    let context_length = architecture.as_ref().and_then(|arch| uint32(&gguf, &format!("{arch}.context_length")));
    Ok(ModelInfo {
        id: model_id(path),
        path: path.into(),
        size_bytes,
        name: string(&gguf, "general.name"),
        parameters: string(&gguf, "general.size_label"),
        quantization: uint32(&gguf, "general.file_type").map(quantization_name),
        context_length,
        has_chat_template: string(&gguf, "tokenizer.chat_template").is_some(),
        architecture,
        is_default: false,
        pinned: false,
    })
}

/// The models directory (`DATA_DIR/models`).
#[derive(Clone, Debug)]
pub struct ModelStore {
    dir: PathBuf,
}

impl ModelStore {
    pub fn new(dir: PathBuf) -> Self {
        ModelStore { dir }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
        move |source| ModelError::Io { path: path.into(), source }
    }

    fn default_file(&self) -> PathBuf {
        self.dir.join("default")
    }

    fn pinned_file(&self) -> PathBuf {
        self.dir.join("pinned")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Check `source` is GGUF, then copy it in under its file name.
    pub fn import(&self, source: &Path) -> Result<ModelInfo, ModelError> {
        if source.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() != Some("gguf") {
            return Err(ModelError::NotGgufName(source.into()));
        }
        inspect(source)?;
        crate::engine::check_loads(source)
            .map_err(|e| ModelError::Unloadable { path: source.into(), reason: e.to_string() })?;
        let name = source.file_name().expect("a file with an extension has a name");
        let target = self.dir.join(name);
        if target.exists() {
            return Err(ModelError::Exists(model_id(&target)));
        }
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let partial = target.with_extension("gguf.partial");
        std::fs::copy(source, &partial).map_err(Self::io(&partial))?;
        std::fs::rename(&partial, &target).map_err(Self::io(&target))?;
        self.info(&target)
    }

    /// A downloaded GGUF file (already on this disk) becomes the model
    /// `name`: checked as [`ModelStore::import`] checks, then renamed in (no
    /// copy); a file that fails the checks is deleted.
    pub fn adopt(&self, downloaded: &Path, name: &str) -> Result<ModelInfo, ModelError> {
        let target = self.dir.join(name);
        let checked = if !name.to_ascii_lowercase().ends_with(".gguf") || name.contains('/') || name.starts_with('.') {
            Err(ModelError::NotGgufName(target.clone()))
        } else if target.exists() {
            Err(ModelError::Exists(model_id(&target)))
        } else {
            inspect(downloaded).and_then(|_| {
                crate::engine::check_loads(downloaded)
                    .map_err(|e| ModelError::Unloadable { path: downloaded.into(), reason: e.to_string() })
            })
        };
        if let Err(error) = checked {
            let _ = std::fs::remove_file(downloaded);
            return Err(error);
        }
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        std::fs::rename(downloaded, &target).map_err(Self::io(&target))?;
        self.info(&target)
    }

    /// Where downloads in progress are kept (the same disk, so adopting one is a rename).
    pub fn downloads_dir(&self) -> PathBuf {
        self.dir.join(".downloads")
    }

    /// The model file `name`, if it is in the store.
    pub fn find(&self, name: &str) -> Option<ModelInfo> {
        let path = self.dir.join(name);
        path.is_file().then(|| self.info(&path).ok()).flatten()
    }

    fn info(&self, path: &Path) -> Result<ModelInfo, ModelError> {
        let mut info = inspect(path)?;
        info.is_default = self.default_id().as_deref() == Some(info.id.as_str());
        info.pinned = self.pinned().contains(&info.id);
        Ok(info)
    }

    /// Every imported model, by id; files that are not GGUF are left out.
    pub fn list(&self) -> Result<Vec<ModelInfo>, ModelError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ModelError::Io { path: self.dir.clone(), source }),
        };
        let mut models: Vec<ModelInfo> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .filter_map(|p| self.info(&p).ok())
            .collect();
        models.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(models)
    }

    fn path_of(&self, id: &str) -> Result<PathBuf, ModelError> {
        let path = self.dir.join(format!("{id}.gguf"));
        // An id is a file stem: nothing that could walk out of the directory.
        if id.is_empty() || id.contains('/') || id.starts_with('.') || !path.is_file() {
            return Err(ModelError::Unknown(id.into()));
        }
        Ok(path)
    }

    pub fn remove(&self, id: &str) -> Result<(), ModelError> {
        let path = self.path_of(id)?;
        std::fs::remove_file(&path).map_err(Self::io(&path))?;
        if self.default_id().as_deref() == Some(id) {
            let _ = std::fs::remove_file(self.default_file());
        }
        self.set_pinned(id, false)
    }

    /// The ids of the models the donor pinned (kept whatever the catalogue says).
    pub fn pinned(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.pinned_file()).unwrap_or_default();
        text.lines().map(str::trim).filter(|id| !id.is_empty()).map(String::from).collect()
    }

    /// Pin the model `id` (or unpin it): a pinned model is never deleted but by the donor.
    pub fn set_pinned(&self, id: &str, pinned: bool) -> Result<(), ModelError> {
        if pinned {
            self.path_of(id)?;
        }
        let mut ids: Vec<String> = self.pinned().into_iter().filter(|other| other != id).collect();
        if pinned {
            ids.push(id.to_string());
        } else if ids.len() == self.pinned().len() {
            return Ok(()); // not pinned: nothing to write
        }
        let file = self.pinned_file();
        let partial = file.with_extension("partial");
        std::fs::write(&partial, ids.join("\n") + "\n").map_err(Self::io(&partial))?;
        std::fs::rename(&partial, &file).map_err(Self::io(&file))
    }

    pub fn set_default(&self, id: &str) -> Result<(), ModelError> {
        self.path_of(id)?;
        let file = self.default_file();
        heiwa_config::write_secret(&file, id).map_err(Self::io(&file))
    }

    pub fn default_id(&self) -> Option<String> {
        std::fs::read_to_string(self.default_file()).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }

    /// The default model's file, if one is chosen and still there.
    pub fn default_path(&self) -> Option<PathBuf> {
        self.default_id().and_then(|id| self.path_of(&id).ok())
    }
}

/// A model's id: its file name without the extension (what `heiwa serve`'s
/// `/v1/models` lists and `heiwa models default` takes).
pub fn model_id(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
}

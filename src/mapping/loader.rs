//! Reading a mappings folder: which files are sources, and loading them all or none.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::check::Ctx;
use super::compile::{compile_file, source_id};
use super::yaml_tree::Pos;
use super::{LoadError, LoadErrors, MappingSet, Plan, SourceMapping};

pub fn load_dir(dir: &Path) -> Result<MappingSet, LoadErrors> {
    let files = mapping_files(dir).map_err(|e| {
        LoadErrors(vec![LoadError {
            file: dir.to_path_buf(),
            line: 1,
            column: 1,
            message: format!("cannot read the mappings folder: {e}"),
        }])
    })?;
    let mut errors = Vec::new();
    let mut set = MappingSet::default();
    for file in files {
        let loaded = std::fs::read(&file)
            .map_err(|e| LoadErrors(vec![file_error(&file, format!("cannot read file: {e}"))]))
            .and_then(|bytes| compile_text(&file, &bytes));
        match loaded {
            Ok(mapping) if set.sources.contains_key(&mapping.id) => {
                errors.push(file_error(
                    &file,
                    format!(
                        "another file already defines source `{}`; keep one of them",
                        mapping.id
                    ),
                ));
            }
            Ok(mapping) => {
                set.sources.insert(mapping.id.clone(), Arc::new(mapping));
            }
            Err(LoadErrors(e)) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(LoadErrors(errors))
    }
}

/// `*.yaml`/`*.yml` directly in `dir`, sorted, except names starting with `_` or `.`.
fn mapping_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let yaml = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        );
        if yaml && path.is_file() && !name.starts_with('_') && !name.starts_with('.') {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn file_error(file: &Path, message: String) -> LoadError {
    LoadError {
        file: file.to_path_buf(),
        line: Pos::START.line,
        column: Pos::START.column,
        message,
    }
}

/// Compiles one file's bytes into a source mapping, or every error found in it.
pub fn compile_text(file: &Path, bytes: &[u8]) -> Result<SourceMapping, LoadErrors> {
    let mut ctx = Ctx::new(file);
    let id = source_id(file).map_err(|e| ctx.err(Pos::START, e)).ok();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            return Err(LoadErrors(vec![file_error(
                file,
                "the file is not UTF-8 text".to_owned(),
            )]));
        }
    };
    let compiled = compile_file(&mut ctx, text);
    // In file order, so an admin can work through them top to bottom.
    ctx.errors.sort_by_key(|e| (e.line, e.column));
    match (id, compiled.source, ctx.errors.is_empty()) {
        (Some(id), Some(source), true) => Ok(SourceMapping {
            id,
            file: file.to_path_buf(),
            content_hash: hex::encode(Sha256::digest(bytes)),
            format: source.format,
            auth: source.auth,
            records: source.records,
            import: source.import,
            plan: Plan {
                rules: compiled.rules,
                dedupe_key: source.dedupe_key,
                version: source.version,
            },
        }),
        _ => Err(LoadErrors(ctx.errors)),
    }
}

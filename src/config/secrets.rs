//! Secrets come from the environment, or from a file named by `NAME_FILE` (Docker and
//! Kubernetes secrets are files); never from a command-line flag, which every user of
//! the machine can read in `ps`.

use std::path::Path;

/// Every secret the bridge reads, each also as `NAME_FILE`. The webhook secrets a mapping
/// names (`value_env`, `secret_env`) follow the same rule (`mapping::auth`).
pub const SECRETS: &[&str] = &[
    "DATABASE_URL",
    "WEBENGAGE_API_KEY",
    "BRIDGE_ADMIN_TOKEN",
    "BRIDGE_VIEWER_TOKEN",
    // Read by the OTLP exporter itself; the `_FILE` form by `telemetry::otel`.
    "OTEL_EXPORTER_OTLP_HEADERS",
];

/// Printed under the commands' `--help`.
pub const SECRETS_HELP: &str = "Secrets are read from the environment only, never from flags: \
DATABASE_URL (default postgres://postgres@localhost:5432/webengage_bridge), WEBENGAGE_API_KEY, \
BRIDGE_ADMIN_TOKEN, BRIDGE_VIEWER_TOKEN, OTEL_EXPORTER_OTLP_HEADERS. Each may instead be a file: NAME_FILE=/path (its first \
line), which wins over NAME.";

/// The secret `name`: the first line of the file named by `{name}_FILE` when that is set,
/// else the variable `name` itself. Unset or empty (docker compose passes an unset
/// variable as an empty string) is None. Errors name the variable and the file, never
/// the content.
pub fn secret(name: &str) -> Result<Option<String>, String> {
    let file_var = format!("{name}_FILE");
    if let Some(path) = std::env::var_os(&file_var).filter(|p| !p.is_empty()) {
        return read_secret_file(&file_var, Path::new(&path)).map(Some);
    }
    Ok(env_only(name))
}

/// The variable `name` when set and not empty.
pub fn env_only(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The first line of `path`, trimmed; `variable` names where the path came from.
pub fn read_secret_file(variable: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{variable}: cannot read {}: {e}", path.display()))?;
    let value = text.lines().next().unwrap_or("").trim();
    if value.is_empty() {
        return Err(format!("{variable}: {} is empty", path.display()));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_gives_its_first_line_and_errors_name_the_file_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "s3cret-value  \nsecond line\n").unwrap();
        assert_eq!(read_secret_file("X_FILE", &file).unwrap(), "s3cret-value");
        std::fs::write(&file, "\n").unwrap();
        let empty = read_secret_file("X_FILE", &file).unwrap_err();
        assert!(
            empty.contains("X_FILE") && empty.contains("is empty"),
            "{empty}"
        );
        let missing = read_secret_file("X_FILE", &dir.path().join("nope")).unwrap_err();
        assert!(missing.contains("X_FILE: cannot read"), "{missing}");
    }
}

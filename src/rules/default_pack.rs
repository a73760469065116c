//! The embedded default rule pack: Sigma rules written for vigil, in `rules/default/`.
//!
//! The files are compiled into the binary so that `vigil` with no `--rules` works anywhere.
//! A test below keeps this list and the directory in step: adding a file to `rules/default/`
//! without listing it here (or the reverse) fails `cargo test`.

/// (file name, contents) of every file of the pack, in name order.
pub const FILES: &[(&str, &str)] = &[
    (
        "compute.yml",
        include_str!("../../rules/default/compute.yml"),
    ),
    (
        "correlations.yml",
        include_str!("../../rules/default/correlations.yml"),
    ),
    ("iam.yml", include_str!("../../rules/default/iam.yml")),
    (
        "logging.yml",
        include_str!("../../rules/default/logging.yml"),
    ),
    (
        "network.yml",
        include_str!("../../rules/default/network.yml"),
    ),
    ("signin.yml", include_str!("../../rules/default/signin.yml")),
    (
        "storage.yml",
        include_str!("../../rules/default/storage.yml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::FILES;
    use std::collections::BTreeSet;
    use std::path::Path;

    #[test]
    fn files_match_the_rules_default_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/default");
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
            .collect();
        let embedded: BTreeSet<String> = FILES.iter().map(|(name, _)| name.to_string()).collect();
        assert_eq!(
            embedded.len(),
            FILES.len(),
            "a file is listed twice in FILES"
        );
        assert_eq!(
            embedded, on_disk,
            "default_pack::FILES and rules/default/ disagree"
        );
    }
}

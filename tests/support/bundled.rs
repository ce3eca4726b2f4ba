//! The bundled example (definitions, journey tests and sample customers) copied into a
//! folder of its own, for tests that run the `touchline` binary on it.

/// Copies the bundled example into a temporary folder.
pub fn bundled_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for folder in [
        "journeys",
        "journey-tests",
        "scripts",
        "templates",
        "schemas",
        "sample",
    ] {
        std::fs::create_dir_all(dir.path().join(folder)).expect("mkdir");
        for entry in std::fs::read_dir(source.join(folder)).expect("folder") {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name");
            std::fs::copy(&path, dir.path().join(folder).join(name)).expect("copy");
        }
    }
    std::fs::copy(
        source.join("touchline.yaml"),
        dir.path().join("touchline.yaml"),
    )
    .expect("copy");
    dir
}

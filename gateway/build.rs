//! Compiles the web console (`console/`) into the binary: every file under it becomes an
//! entry of `CONSOLE_ASSETS` (its path relative to `console/`, and its bytes), so the
//! console works offline and a release is one file.

use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    let mut out = String::from(
        "/// The console's files: (path under `/console/`, bytes).\n\
         pub static CONSOLE_ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let relative = file
            .strip_prefix(&root)
            .expect("under console/")
            .components()
            .map(|c| c.as_os_str().to_str().expect("a UTF-8 file name"))
            .collect::<Vec<_>>()
            .join("/");
        out.push_str(&format!(
            "    ({relative:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("console_assets.rs");
    std::fs::write(dest, out).expect("writing console_assets.rs");
}

/// What the console serves, by extension: its pages, scripts, styles, images and the
/// wasm. Notes, licences and type declarations beside them stay in the repository.
const SERVED: &[&str] = &["html", "js", "css", "svg", "png", "wasm", "json"];

fn has_extension(path: &Path, wanted: &str) -> bool {
    path.extension().is_some_and(|ext| ext == wanted)
}

/// Every served file under `dir`, depth first; directories are watched for new files.
fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    println!("cargo:rerun-if-changed={}", dir.display());
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        // Editors' and the OS's litter is not the console's.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => walk(&path, files),
            Ok(kind) if kind.is_file() && SERVED.iter().any(|ext| has_extension(&path, ext)) => {
                files.push(path)
            }
            _ => {}
        }
    }
}

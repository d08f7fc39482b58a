//! Embeds sql/procedures/*.sql into the binary (one view or procedure per file) and makes
//! cargo rebuild when a migration or a procedure file is added, changed or removed.

use std::fmt::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=sql/procedures");
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/procedures");
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .expect("sql/procedures exists")
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    files.sort();
    let mut code =
        String::from("/// (object name, SQL) of every file in sql/procedures, sorted by name.\n");
    code.push_str("pub(crate) const PROCEDURE_FILES: &[(&str, &str)] = &[\n");
    for path in files {
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("utf-8 file name");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR is set")).join("procedures.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}

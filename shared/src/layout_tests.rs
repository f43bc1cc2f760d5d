//! The layering the module map in `lib.rs` states, checked on the source: every top-level module imports only
//! modules of its own layer or the layers below (the one exception: `batch_export`'s `Destination` names each
//! destination's config), and no two top-level modules import each other, directly or around a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layer of a top-level module: foundations, domain, sources, engine, destinations, orchestration.
fn layer(unit: &str) -> usize {
    match unit {
        "error" | "format" | "limits" | "network" | "aws_error" => 0,
        "time" | "model" | "event" | "person" | "runs" | "backfills" | "batch_export" | "capture" => 1,
        "sources" => 2,
        "engine" => 3,
        "destinations" => 4,
        "settings" | "store" | "secrets" | "schedules" | "autopause" | "steps" | "api" | "ingest" | "lambda" => 5,
        other => panic!("`{other}` is in no layer: add it to lib.rs's module map and to this test"),
    }
}

/// Which top-level modules each top-level module names (`crate::x`), outside comments.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    fn visit(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    visit(&root, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&root).unwrap();
        let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let unit = first.trim_end_matches(".rs").to_string();
        if unit == "lib" || unit == "layout_tests" {
            continue;
        }
        let named = graph.entry(unit.clone()).or_default();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            let code = line.split("//").next().unwrap();
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
                if !name.is_empty() && name != unit && rest[name.len()..].starts_with("::") {
                    named.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn every_module_imports_only_its_layer_and_the_ones_below() {
    let mut wrong = Vec::new();
    for (unit, named) in imports() {
        for other in named {
            let allowed = layer(&other) <= layer(&unit) || (unit == "batch_export" && other == "destinations");
            if !allowed {
                wrong.push(format!("{unit} (layer {}) imports {other} (layer {})", layer(&unit), layer(&other)));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = imports();
    // Depth-first search for a back edge; reports the circle it closes.
    fn visit<'a>(
        unit: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|u| *u == unit) {
            panic!("a module circle: {}", [&path[at..], &[unit]].concat().join(" → "));
        }
        if !done.insert(unit) {
            return;
        }
        path.push(unit);
        for next in graph.get(unit).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for unit in graph.keys() {
        visit(unit, &graph, &mut Vec::new(), &mut done);
    }
}

//! The core's floors, held: each folder of `core/src` stands on the ones below it, and no file
//! uses one above it — nor do files of a floor use each other in a circle. A `crate::` path in
//! code (not in a comment) is a use; the test reads every file of `core/src` and fails naming
//! the file, the line and the path that runs the wrong way.
//!
//! The floors, from the ground up — what each is about is in `core/src/lib.rs`:
//! `pool` < `google` < `state` < `client` < `settings` < `decide` < `admin` < `testing`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FLOORS: [&str; 8] = ["pool", "google", "state", "client", "settings", "decide", "admin", "testing"];

/// A file of the core: its floor (the first segment of its module path) and its name
/// (`decide/flow`, `settings`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Room {
    floor: usize,
    name: String,
}

fn floor_of(first: &str) -> Option<usize> {
    FLOORS.iter().position(|f| *f == first)
}

/// The room a module path names (`crate::decide::flow::Flow` → `decide/flow`).
fn room_of_path(path: &str) -> Option<Room> {
    let mut segments = path.split("::").skip(1);
    let first = segments.next()?;
    let floor = floor_of(first)?;
    let name = match first {
        "settings" | "testing" => first.to_string(),
        _ => format!("{first}/{}", segments.next()?),
    };
    Some(Room { floor, name })
}

/// The room a file is (`core/src/decide/flow.rs` → `decide/flow`); `lib.rs` is none.
fn room_of_file(src: &Path, file: &Path) -> Option<Room> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let name = relative.to_string_lossy().replace('\\', "/");
    let first = name.split('/').next()?.to_string();
    Some(Room { floor: floor_of(&first)?, name })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("core/src reads").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::…` path in a file's code, with its line (what follows `//` on a line is a
/// comment, doc links included); a group (`crate::state::{index, limit_item}`, over several
/// lines or one) is each of its paths.
fn paths_in(text: &str) -> Vec<(usize, String)> {
    let code: String =
        text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::").map(|at| from + at) {
        let tail = &code[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        let path = &tail[..end];
        match (path.strip_suffix("::"), tail[end..].strip_prefix('{')) {
            (Some(stem), Some(group)) => {
                let group = group.split('}').next().unwrap_or_default();
                for member in group.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    found.push((line_of(at), format!("{stem}::{member}")));
                }
            }
            _ => found.push((line_of(at), path.trim_end_matches(':').to_string())),
        }
        from = at + end;
    }
    found
}

/// Each room and the rooms it uses, with where.
fn uses() -> BTreeMap<Room, Vec<(Room, usize, String)>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<Room, Vec<(Room, usize, String)>> = BTreeMap::new();
    for file in files {
        let Some(room) = room_of_file(&src, &file) else { continue };
        let text = std::fs::read_to_string(&file).expect("a source file reads");
        let used = graph.entry(room.clone()).or_default();
        for (line, path) in paths_in(&text) {
            if let Some(target) = room_of_path(&path).filter(|t| *t != room) {
                used.push((target, line, path));
            }
        }
    }
    graph
}

#[test]
fn no_file_uses_a_floor_above_its_own() {
    let mut upward = Vec::new();
    for (room, used) in uses() {
        for (target, line, path) in used {
            if target.floor > room.floor {
                upward.push(format!(
                    "core/src/{}.rs:{line} uses {path} ({} is above {})",
                    room.name, FLOORS[target.floor], FLOORS[room.floor]
                ));
            }
        }
    }
    assert!(upward.is_empty(), "uses that run up a floor:\n{}", upward.join("\n"));
}

#[test]
fn no_files_use_each_other_in_a_circle() {
    let graph: BTreeMap<Room, BTreeSet<Room>> =
        uses().into_iter().map(|(room, used)| (room, used.into_iter().map(|(t, _, _)| t).collect())).collect();
    // Depth-first: a room met again while it is on the path closes a circle.
    fn visit(
        room: &Room,
        graph: &BTreeMap<Room, BTreeSet<Room>>,
        path: &mut Vec<Room>,
        done: &mut BTreeSet<Room>,
    ) -> Option<Vec<Room>> {
        if let Some(at) = path.iter().position(|r| r == room) {
            return Some(path[at..].to_vec());
        }
        if done.contains(room) {
            return None;
        }
        path.push(room.clone());
        for next in graph.get(room).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(room.clone());
        None
    }
    let mut done = BTreeSet::new();
    for room in graph.keys() {
        if let Some(circle) = visit(room, &graph, &mut Vec::new(), &mut done) {
            let names: Vec<&str> = circle.iter().map(|r| r.name.as_str()).collect();
            panic!("a circle of uses: {} -> {}", names.join(" -> "), names[0]);
        }
    }
}

#[test]
fn the_test_reads_what_it_should() {
    // A doc link is no use; a path in code is; every floor has files.
    let paths = |text: &str| paths_in(text).into_iter().map(|(_, p)| p).collect::<Vec<_>>();
    assert_eq!(paths("use crate::decide::flow::Flow; // crate::admin::status"), ["crate::decide::flow::Flow"]);
    assert!(paths("/// [`Flow`](crate::decide::flow::Flow)").is_empty());
    assert_eq!(paths("use crate::state::{index, limit_item};"), ["crate::state::index", "crate::state::limit_item"]);
    assert_eq!(
        paths_in("// x\nuse crate::state::{\n    index,\n    limit_item,\n};")[1],
        (2, "crate::state::limit_item".to_string())
    );
    assert_eq!(room_of_path("crate::settings::Limiter").map(|r| r.name), Some("settings".to_string()));
    let graph = uses();
    for (floor, name) in FLOORS.iter().enumerate() {
        assert!(graph.keys().any(|r| r.floor == floor), "no file on floor {name}");
    }
}

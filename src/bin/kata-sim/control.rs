//! The stdin control protocol: one command per line, one answer line each.
//!
//! ```text
//! add [KIND]            -> ok <id> <root>      (KIND: default small large rs file file:N)
//! remove <ID>           -> ok
//! fault <ID> <FAULT>    -> ok
//! list                  -> ok <id> <id> ...    (sorted)
//! scrapes <ID>          -> ok <count>          (GET /metrics received)
//! quit                  -> ok                  (then clean up and exit 0)
//! anything else         -> err <message>
//! ```
//!
//! `<ID>` is a sandbox id or its decimal index.  Blank lines are ignored and
//! get no answer.

use std::fmt::Write;

use crate::body::BodyKind;
use crate::faults::{self, Fault};
use crate::node::Node;

pub struct Reply {
    /// `None` for blank lines.
    pub line: Option<String>,
    pub quit: bool,
}

/// Runs one command line against the node.
pub fn handle(node: &mut Node, line: &str) -> Reply {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&cmd, args)) = words.split_first() else {
        return Reply {
            line: None,
            quit: false,
        };
    };
    let result = run(node, cmd, args);
    Reply {
        line: Some(match result {
            Ok(s) if s.is_empty() => "ok".to_string(),
            Ok(s) => format!("ok {s}"),
            Err(e) => format!("err {e}"),
        }),
        quit: cmd == "quit",
    }
}

fn run(node: &mut Node, cmd: &str, args: &[&str]) -> Result<String, String> {
    match (cmd, args) {
        ("add", [] | [_]) => {
            let kind = args.first().copied().unwrap_or("default");
            let kind = BodyKind::parse(kind).ok_or_else(|| {
                format!("unknown body {kind} (default small large rs file file:N)")
            })?;
            let id = node.add(kind, Fault::Ok)?;
            let sb = node.find(&id).ok_or("vanished")?;
            Ok(format!("{id} {}", sb.root.display()))
        }
        ("remove", [id]) => node.remove(id).map(|()| String::new()),
        ("fault", [id, kind]) => {
            let fault = Fault::parse(kind)
                .ok_or_else(|| format!("unknown fault {kind} ({})", faults::NAMES))?;
            node.set_fault(id, fault).map(|()| String::new())
        }
        ("list", []) => {
            let mut s = String::new();
            for id in node.ids() {
                let _ = write!(s, "{}{id}", if s.is_empty() { "" } else { " " });
            }
            Ok(s)
        }
        ("scrapes", [id]) => node.scrapes(id).map(|n| n.to_string()),
        ("quit", []) => Ok(String::new()),
        ("add" | "remove" | "fault" | "list" | "scrapes" | "quit", _) => {
            Err(format!("usage: {}", usage(cmd)))
        }
        _ => Err(format!(
            "unknown command {cmd} (add remove fault list scrapes quit)"
        )),
    }
}

fn usage(cmd: &str) -> &'static str {
    match cmd {
        "add" => "add [KIND]",
        "remove" => "remove <ID>",
        "fault" => "fault <ID> <KIND>",
        "scrapes" => "scrapes <ID>",
        "list" => "list",
        _ => "quit",
    }
}

//! Builds a stage's path-segment tree ([`Node`]s) from route paths. The control plane uses it
//! while compiling; it lives beside the lookup so that the two agree on the shape.

use crate::table::{Edge, Method, MethodRoute, Node, MAX_PARAMS};

/// Why a route path cannot enter the tree. Each is a user error in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// `{}` or a segment mixing braces and text (`pets{id}`).
    BadSegment(String),
    /// `{name+}` that is not the last segment.
    GreedyNotLast,
    /// More than [`MAX_PARAMS`] parameters.
    TooManyParams,
    /// The same parameter name twice in one path.
    DuplicateParam(String),
    /// The same method and resource declared twice (perhaps with different parameter names).
    Duplicate,
    /// A second parameter name at a position where another route already named it differently
    /// (`/pets/{id}` and `/pets/{petId}/toys`): AWS treats these as one resource.
    ConflictingParam { existing: String, new: String },
}

impl std::fmt::Display for TreeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TreeError::NotAbsolute => write!(f, "the path must start with '/'"),
            TreeError::BadSegment(s) => {
                write!(f, "segment '{s}' is not valid: use literal text, '{{name}}' or a final '{{name+}}'")
            }
            TreeError::GreedyNotLast => write!(f, "a greedy '{{name+}}' segment must be the last"),
            TreeError::TooManyParams => write!(f, "at most {MAX_PARAMS} path parameters per route"),
            TreeError::DuplicateParam(p) => write!(f, "path parameter '{p}' appears twice"),
            TreeError::Duplicate => write!(f, "the same method and path is declared twice"),
            TreeError::ConflictingParam { existing, new } => write!(
                f,
                "path parameter '{{{new}}}' sits where another route has '{{{existing}}}'; \
                 use one name for one position"
            ),
        }
    }
}

impl std::error::Error for TreeError {}

/// One parsed segment of a route path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment<'a> {
    Literal(&'a str),
    Param(&'a str),
    Greedy(&'a str),
}

/// Splits a route path (`/pets/{petId}`) into segments and checks its shape.
pub fn parse_path(path: &str) -> Result<Vec<Segment<'_>>, TreeError> {
    let rest = path.strip_prefix('/').ok_or(TreeError::NotAbsolute)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let raw: Vec<&str> = rest.split('/').collect();
    for (i, seg) in raw.iter().enumerate() {
        let parsed = if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match inner.strip_suffix('+') {
                Some(n) => (n, true),
                None => (inner, false),
            };
            let valid = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !valid {
                return Err(TreeError::BadSegment((*seg).to_string()));
            }
            if names.contains(&name) {
                return Err(TreeError::DuplicateParam(name.to_string()));
            }
            names.push(name);
            if greedy {
                if i + 1 != raw.len() {
                    return Err(TreeError::GreedyNotLast);
                }
                Segment::Greedy(name)
            } else {
                Segment::Param(name)
            }
        } else {
            if seg.is_empty() || seg.contains(['{', '}']) {
                return Err(TreeError::BadSegment((*seg).to_string()));
            }
            Segment::Literal(seg)
        };
        segments.push(parsed);
    }
    if names.len() > MAX_PARAMS {
        return Err(TreeError::TooManyParams);
    }
    Ok(segments)
}

/// Names of a path's parameters, in order.
pub fn param_names(segments: &[Segment<'_>]) -> Vec<String> {
    segments
        .iter()
        .filter_map(|s| match s {
            Segment::Param(n) | Segment::Greedy(n) => Some((*n).to_string()),
            Segment::Literal(_) => None,
        })
        .collect()
}

/// Accumulates routes, then yields the node arena (node 0 is the root).
#[derive(Debug)]
pub struct TreeBuilder {
    nodes: Vec<BuildNode>,
}

#[derive(Debug, Default)]
struct BuildNode {
    literals: Vec<(String, u32)>,
    param: Option<(String, u32)>,
    methods: Vec<MethodRoute>,
    greedy: Vec<MethodRoute>,
    greedy_name: Option<String>,
}

impl Default for TreeBuilder {
    fn default() -> Self {
        TreeBuilder { nodes: vec![BuildNode::default()] }
    }
}

impl TreeBuilder {
    pub fn insert(&mut self, method: Method, segments: &[Segment<'_>], route: u32) -> Result<(), TreeError> {
        let mut node = 0usize;
        for segment in segments {
            match segment {
                Segment::Literal(text) => {
                    let found = self.nodes[node].literals.iter().find(|(s, _)| s == text);
                    node = match found {
                        Some((_, child)) => *child as usize,
                        None => {
                            let child = self.new_node();
                            self.nodes[node].literals.push(((*text).to_string(), child));
                            child as usize
                        }
                    };
                }
                Segment::Param(name) => {
                    node = match &self.nodes[node].param {
                        Some((existing, child)) => {
                            if existing != name {
                                return Err(TreeError::ConflictingParam {
                                    existing: existing.clone(),
                                    new: (*name).to_string(),
                                });
                            }
                            *child as usize
                        }
                        None => {
                            let child = self.new_node();
                            self.nodes[node].param = Some(((*name).to_string(), child));
                            child as usize
                        }
                    };
                }
                Segment::Greedy(name) => {
                    let here = &mut self.nodes[node];
                    match &here.greedy_name {
                        Some(existing) if existing != name => {
                            return Err(TreeError::ConflictingParam {
                                existing: existing.clone(),
                                new: (*name).to_string(),
                            })
                        }
                        _ => here.greedy_name = Some((*name).to_string()),
                    }
                    if here.greedy.iter().any(|m| m.method == method) {
                        return Err(TreeError::Duplicate);
                    }
                    here.greedy.push(MethodRoute { method, route });
                    return Ok(());
                }
            }
        }
        let here = &mut self.nodes[node];
        if here.methods.iter().any(|m| m.method == method) {
            return Err(TreeError::Duplicate);
        }
        here.methods.push(MethodRoute { method, route });
        Ok(())
    }

    fn new_node(&mut self) -> u32 {
        self.nodes.push(BuildNode::default());
        (self.nodes.len() - 1) as u32
    }

    pub fn finish(self) -> Vec<Node> {
        self.nodes
            .into_iter()
            .map(|n| {
                let mut literals: Vec<Edge> =
                    n.literals.into_iter().map(|(segment, node)| Edge { segment, node }).collect();
                literals.sort_by(|a, b| a.segment.as_bytes().cmp(b.segment.as_bytes()));
                Node {
                    literals,
                    param: n.param.map(|(_, child)| child),
                    methods: n.methods,
                    greedy: n.greedy,
                }
            })
            .collect()
    }
}

//! Builds a stage's path-segment tree ([`Node`]s) from route paths. The control plane uses it
//! while compiling; it lives beside the lookup so that the two agree on the shape.

use crate::table::{edge_slot, Edge, Method, MethodRoute, Node, Route, RouteSet, EMPTY_EDGE, MAX_PARAMS};
use std::collections::HashMap;

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
    literals: HashMap<String, u32>,
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
                    node = match self.nodes[node].literals.get(*text) {
                        Some(child) => *child as usize,
                        None => {
                            let child = self.new_node();
                            self.nodes[node].literals.insert((*text).to_string(), child);
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

    /// The route set: the node arena, the hashed edge table and the given routes (indexed by
    /// the route numbers passed to [`insert`](Self::insert)).
    pub fn finish(self, routes: Vec<Route>) -> RouteSet {
        let edge_count: usize = self.nodes.iter().map(|n| n.literals.len()).sum();
        let slots = if edge_count == 0 { 0 } else { (edge_count * 2).next_power_of_two() };
        let mut edges: Vec<Edge> =
            (0..slots).map(|_| Edge { parent: EMPTY_EDGE, segment: String::new(), node: 0 }).collect();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for (parent, n) in self.nodes.into_iter().enumerate() {
            let parent = parent as u32;
            // Sorted, so the same routes always give the same bytes.
            let mut literals: Vec<(String, u32)> = n.literals.into_iter().collect();
            literals.sort();
            nodes.push(Node {
                has_literals: !literals.is_empty(),
                param: n.param.map(|(_, child)| child),
                methods: n.methods,
                greedy: n.greedy,
            });
            for (segment, node) in literals {
                let mut slot = edge_slot(parent, &segment, slots);
                while edges[slot].parent != EMPTY_EDGE {
                    slot = (slot + 1) & (slots - 1);
                }
                edges[slot] = Edge { parent, segment, node };
            }
        }
        RouteSet { nodes, edges, routes }
    }
}

//! Which right a request needs (docs/contract.md §2 `routes`, §4 "Right"): the first matching route wins.
//!
//! Owns: the route table and its lookup. Does not own: whether the client holds the right (the
//! policy decides). No I/O.

#[cfg(test)]
mod tests;

use http::Method;

use super::pattern::{PathPattern, PathSeg, has_dot_segment};
use crate::policy::Right;

/// One `routes:` entry; `None` fields match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The methods this route applies to; `None` = any method.
    pub methods: Option<Vec<Method>>,
    /// The raw-path pattern; `None` = any path.
    pub path: Option<PathPattern>,
    /// The right a matching request needs.
    pub right: Right,
}

/// The ordered route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// A table from routes in priority order.
    pub fn new(routes: Vec<Route>) -> Self {
        Self(routes)
    }

    /// docs/contract.md §2's default table: `/**/archive/**` → download; GET, HEAD, OPTIONS → view;
    /// anything else → upload.
    pub fn default_routes() -> Self {
        let archive = PathPattern::from_segs(
            "/**/archive/**",
            vec![
                PathSeg::DoubleStar,
                PathSeg::Literal("archive".into()),
                PathSeg::DoubleStar,
            ],
        );
        Self(vec![
            Route {
                methods: None,
                path: Some(archive),
                right: Right::Download,
            },
            Route {
                methods: Some(vec![Method::GET, Method::HEAD, Method::OPTIONS]),
                path: None,
                right: Right::View,
            },
            Route {
                methods: None,
                path: None,
                right: Right::Upload,
            },
        ])
    }

    /// The same table with every path pattern's literals compared ASCII case-insensitively when
    /// `fold` (`requests.path_case: insensitive`).
    pub fn fold_case(self, fold: bool) -> Self {
        Self(
            self.0
                .into_iter()
                .map(|r| Route {
                    path: r.path.map(|p| p.fold_case(fold)),
                    ..r
                })
                .collect(),
        )
    }

    /// The routes in priority order.
    pub fn as_slice(&self) -> &[Route] {
        &self.0
    }

    /// The right needed by `method` on the raw URI `path`.
    ///
    /// Fails closed to [`Right::Upload`], the most demanding right:
    /// - when no route matches, so a table without a catch-all cannot leave requests unguarded;
    /// - when a route whose methods match has a path pattern and `path` has a dot segment: the
    ///   upstream may resolve it onto a path that route would have matched, so we cannot tell.
    ///
    /// # Performance
    /// No allocation; linear in the routes, see `PathPattern::matches` for each pattern.
    pub fn right_for(&self, method: &Method, path: &str) -> Right {
        let dotted = has_dot_segment(path);
        for route in &self.0 {
            if route
                .methods
                .as_ref()
                .is_some_and(|ms| !ms.contains(method))
            {
                continue;
            }
            match &route.path {
                None => return route.right,
                Some(_) if dotted => return Right::Upload,
                Some(pattern) if pattern.matches(path).is_some() => return route.right,
                Some(_) => {}
            }
        }
        Right::Upload
    }
}

impl Default for Routes {
    /// [`Routes::default_routes`].
    fn default() -> Self {
        Self::default_routes()
    }
}

impl From<Vec<Route>> for Routes {
    fn from(routes: Vec<Route>) -> Self {
        Self(routes)
    }
}

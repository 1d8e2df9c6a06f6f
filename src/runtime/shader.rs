//! WGSL sources: every kernel is a real `.wgsl` file under `shaders/`, embedded in the binary,
//! run through a small preprocessor before naga sees it.
//!
//! The preprocessor knows three things:
//! - `#include "common/NAME.wgsl"` pulls in a file of `shaders/common/` (once per module);
//! - `#if NAME` / `#else` / `#endif` keep or drop lines on a define being present and not "0";
//! - `{{NAME}}` is replaced by the define's value; an unknown `{{NAME}}` is an error.
//!
//! Defines are the fixed knobs of a kernel variant (element type, tile sizes, epilogue);
//! problem sizes never go here: they travel in the uniform parameters.

use crate::{Error, Result};
use wgpu::naga;

/// Every shader file, by name (the file stem under `shaders/`).
pub const SHADERS: &[(&str, &str)] = &[
    // One line per shader file.
    ("smoke", include_str!("../../shaders/smoke.wgsl")),
    ("layernorm", include_str!("../../shaders/layernorm.wgsl")),
    ("embedding", include_str!("../../shaders/embedding.wgsl")),
    ("pooling", include_str!("../../shaders/pooling.wgsl")),
    ("gather", include_str!("../../shaders/gather.wgsl")),
    ("topk", include_str!("../../shaders/topk.wgsl")),
    ("splade", include_str!("../../shaders/splade.wgsl")),
    ("rope", include_str!("../../shaders/rope.wgsl")),
    ("attention", include_str!("../../shaders/attention.wgsl")),
    (
        "attention_coop",
        include_str!("../../shaders/attention_coop.wgsl"),
    ),
    ("convert", include_str!("../../shaders/convert.wgsl")),
    ("matmul", include_str!("../../shaders/matmul.wgsl")),
    (
        "matmul_subgroup",
        include_str!("../../shaders/matmul_subgroup.wgsl"),
    ),
    (
        "matmul_coop",
        include_str!("../../shaders/matmul_coop.wgsl"),
    ),
];

/// Files that `#include` can reach.
pub const COMMON: &[(&str, &str)] = &[
    (
        "common/math.wgsl",
        include_str!("../../shaders/common/math.wgsl"),
    ),
    (
        "common/rownorm.wgsl",
        include_str!("../../shaders/common/rownorm.wgsl"),
    ),
    (
        "common/attention_span.wgsl",
        include_str!("../../shaders/common/attention_span.wgsl"),
    ),
    (
        "common/coop.wgsl",
        include_str!("../../shaders/common/coop.wgsl"),
    ),
    (
        "common/rope_angle.wgsl",
        include_str!("../../shaders/common/rope_angle.wgsl"),
    ),
    (
        "common/matmul_epilogue.wgsl",
        include_str!("../../shaders/common/matmul_epilogue.wgsl"),
    ),
    (
        "common/matmul_wrow.wgsl",
        include_str!("../../shaders/common/matmul_wrow.wgsl"),
    ),
];

/// The source of a shader file by name.
pub fn source(name: &str) -> Result<&'static str> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Shader {
            kernel: name.into(),
            message: "no such shader file".into(),
        })
}

/// Expands includes, conditionals and substitutions of shader `name` with `defines`.
pub fn preprocess(name: &str, defines: &[(String, String)]) -> Result<String> {
    let err = |message: String| Error::Shader {
        kernel: name.to_string(),
        message,
    };
    let mut out = String::new();
    let mut included: Vec<&str> = Vec::new();
    expand(source(name)?, defines, &mut out, &mut included).map_err(err)?;
    Ok(out)
}

fn is_on(defines: &[(String, String)], key: &str) -> bool {
    defines
        .iter()
        .any(|(k, v)| k == key && v != "0" && !v.is_empty())
}

fn expand<'a>(
    src: &'a str,
    defines: &[(String, String)],
    out: &mut String,
    included: &mut Vec<&'a str>,
) -> std::result::Result<(), String> {
    // Stack of (taking this branch, any enclosing branch dropped).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    for (lineno, line) in src.lines().enumerate() {
        let t = line.trim();
        let active = stack.iter().all(|(on, _)| *on);
        if let Some(key) = t.strip_prefix("#if ") {
            stack.push((is_on(defines, key.trim()), !active));
            continue;
        }
        if t == "#else" {
            let top = stack
                .last_mut()
                .ok_or(format!("line {}: #else without #if", lineno + 1))?;
            top.0 = !top.0;
            continue;
        }
        if t == "#endif" {
            stack
                .pop()
                .ok_or(format!("line {}: #endif without #if", lineno + 1))?;
            continue;
        }
        if !active {
            continue;
        }
        if let Some(rest) = t.strip_prefix("#include ") {
            let file = rest.trim().trim_matches('"');
            let (name, text) = COMMON
                .iter()
                .find(|(n, _)| *n == file)
                .ok_or(format!("line {}: unknown include '{file}'", lineno + 1))?;
            if !included.contains(name) {
                included.push(name);
                expand(text, defines, out, included)?;
            }
            continue;
        }
        substitute(line, defines, out).map_err(|e| format!("line {}: {e}", lineno + 1))?;
        out.push('\n');
    }
    if !stack.is_empty() {
        return Err("unterminated #if".into());
    }
    Ok(())
}

fn substitute(
    line: &str,
    defines: &[(String, String)],
    out: &mut String,
) -> std::result::Result<(), String> {
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or("unclosed {{")?;
        let key = &after[..end];
        let value = defines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .ok_or(format!("no value for {{{{{key}}}}}"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(())
}

/// Reshapes every cooperative-matrix type of `module` and every cooperative load to the
/// fragment shape `[m, n, k]` by role: A is m x k, B is k x n, C (the accumulator) m x n.
/// naga's IR and its SPIR-V writer have any combination of 8 and 16 rows and columns, its
/// WGSL front end only the square `coop_mat8x8` and `coop_mat16x16`: a kernel is written
/// with one square placeholder per role and reshaped here. Fails on a size other than 8 or
/// 16, or on two types of one role and element (a shader this was not written for).
pub fn reshape_coop(
    module: &mut naga::Module,
    [m, n, k]: [u32; 3],
) -> std::result::Result<(), String> {
    use naga::{CooperativeRole, CooperativeSize, Expression, Type, TypeInner};
    let size = |v: u32| match v {
        8 => Ok(CooperativeSize::Eight),
        16 => Ok(CooperativeSize::Sixteen),
        _ => Err(format!(
            "cooperative fragments of {v} rows or columns (8 or 16)"
        )),
    };
    // (rows, columns) of each role.
    let dims = |role: CooperativeRole| -> std::result::Result<_, String> {
        let (r, c) = match role {
            CooperativeRole::A => (m, k),
            CooperativeRole::B => (k, n),
            CooperativeRole::C => (m, n),
        };
        Ok((size(r)?, size(c)?))
    };
    let coop: Vec<_> = module
        .types
        .iter()
        .filter(|(_, t)| matches!(t.inner, TypeInner::CooperativeMatrix { .. }))
        .map(|(h, t)| (h, t.clone()))
        .collect();
    for (handle, ty) in coop {
        let TypeInner::CooperativeMatrix {
            scalar,
            role,
            rows: old_rows,
            columns: old_columns,
        } = ty.inner
        else {
            continue;
        };
        let (rows, columns) = dims(role)?;
        if (rows, columns) == (old_rows, old_columns) {
            continue;
        }
        let new = Type {
            name: ty.name,
            inner: TypeInner::CooperativeMatrix {
                columns,
                rows,
                scalar,
                role,
            },
        };
        if module.types.get(&new).is_some() {
            return Err(format!("two {role:?} fragment types of one element type"));
        }
        module.types.replace(handle, new);
    }
    let functions = module
        .functions
        .iter_mut()
        .map(|(_, f)| f)
        .chain(module.entry_points.iter_mut().map(|e| &mut e.function));
    for function in functions {
        for (_, e) in function.expressions.iter_mut() {
            if let Expression::CooperativeLoad {
                columns,
                rows,
                role,
                ..
            } = e
            {
                (*rows, *columns) = dims(*role)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn conditionals_and_substitutions() {
        let mut out = String::new();
        let src = "a\n#if F16\nenable f16;\n#else\n// f32\n#endif\nx: {{ELEM}}\n";
        expand(
            src,
            &d(&[("F16", "1"), ("ELEM", "f16")]),
            &mut out,
            &mut Vec::new(),
        )
        .unwrap();
        assert_eq!(out, "a\nenable f16;\nx: f16\n");
        let mut out = String::new();
        expand(src, &d(&[("ELEM", "f32")]), &mut out, &mut Vec::new()).unwrap();
        assert_eq!(out, "a\n// f32\nx: f32\n");
    }

    #[test]
    fn unknown_substitution_and_unbalanced_if_are_errors() {
        let mut out = String::new();
        let e = expand("x: {{NOPE}}\n", &[], &mut out, &mut Vec::new()).unwrap_err();
        assert!(e.contains("NOPE"), "{e}");
        let e = expand("#if A\nx\n", &[], &mut String::new(), &mut Vec::new()).unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
        let e = expand(
            "#include \"common/zz.wgsl\"\n",
            &[],
            &mut String::new(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(e.contains("zz.wgsl"), "{e}");
    }

    #[test]
    fn includes_are_expanded_once() {
        let mut out = String::new();
        let src = "#include \"common/math.wgsl\"\n#include \"common/math.wgsl\"\n";
        expand(src, &[], &mut out, &mut Vec::new()).unwrap();
        assert_eq!(out.matches("fn erf_f32").count(), 1);
    }
}

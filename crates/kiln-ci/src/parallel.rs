//! `parallel:` expansion (GitLab's `Config::Normalizer`): `parallel: 3` becomes jobs `name 1/3`
//! … `name 3/3`; `parallel: matrix:` becomes `name: [v1, v2]` per combination with those
//! variables. Each copy gets CI_NODE_INDEX / CI_NODE_TOTAL. `needs:` and `dependencies:` naming
//! the original job are rewritten to name every copy.

use std::collections::HashMap;

use crate::job::{JobSpec, Parallel};
use crate::keywords::NeedSpec;

/// Expands parallel jobs in place of the original, keeping file order.
pub(crate) fn expand(specs: Vec<JobSpec>) -> Vec<JobSpec> {
    let mut copies: HashMap<String, Vec<String>> = HashMap::new();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let Some(parallel) = spec.parallel.clone() else {
            out.push(spec);
            continue;
        };
        let instances: Vec<(String, Vec<(String, String)>)> = match parallel {
            Parallel::Count(total) => (1..=total)
                .map(|i| (format!("{} {i}/{total}", spec.name), Vec::new()))
                .collect(),
            Parallel::Matrix(combos) => combos
                .into_iter()
                .map(|vars| (matrix_name(&spec.name, &vars), vars))
                .collect(),
        };
        let total = instances.len();
        let mut names = Vec::with_capacity(total);
        for (index, (name, matrix_vars)) in instances.into_iter().enumerate() {
            let mut copy = spec.clone();
            copy.name = name.clone();
            copy.parallel = None;
            for (k, v) in matrix_vars.into_iter().chain([
                ("CI_NODE_INDEX".to_string(), (index + 1).to_string()),
                ("CI_NODE_TOTAL".to_string(), total.to_string()),
            ]) {
                match copy
                    .variables
                    .iter_mut()
                    .find(|(existing, _)| *existing == k)
                {
                    Some(slot) => slot.1 = v,
                    None => copy.variables.push((k, v)),
                }
            }
            names.push(name);
            out.push(copy);
        }
        copies.insert(spec.name, names);
    }
    if copies.is_empty() {
        return out;
    }
    for spec in &mut out {
        if let Some(needs) = spec.needs.take() {
            spec.needs = Some(rewrite_needs(needs, &copies));
        }
        if let Some(rules) = spec.rules.as_mut() {
            for rule in rules.iter_mut() {
                if let Some(needs) = rule.needs.take() {
                    rule.needs = Some(rewrite_needs(needs, &copies));
                }
            }
        }
        if let Some(deps) = spec.dependencies.take() {
            spec.dependencies = Some(
                deps.into_iter()
                    .flat_map(|d| copies.get(&d).cloned().unwrap_or_else(|| vec![d]))
                    .collect(),
            );
        }
    }
    out
}

/// GitLab's name of a matrix copy: `job: [value, value]`, values in the matrix's order.
fn matrix_name(job: &str, vars: &[(String, String)]) -> String {
    let values: Vec<&str> = vars.iter().map(|(_, v)| v.as_str()).collect();
    format!("{job}: [{}]", values.join(", "))
}

/// A need of a parallel job needs every copy, or those its own `parallel: matrix:` names.
fn rewrite_needs(needs: Vec<NeedSpec>, copies: &HashMap<String, Vec<String>>) -> Vec<NeedSpec> {
    needs
        .into_iter()
        .flat_map(|need| match (&need.matrix, copies.get(&need.job)) {
            (Some(combos), _) => combos
                .iter()
                .map(|vars| NeedSpec {
                    job: matrix_name(&need.job, vars),
                    matrix: None,
                    ..need.clone()
                })
                .collect(),
            (None, Some(names)) => names
                .iter()
                .map(|n| NeedSpec {
                    job: n.clone(),
                    ..need.clone()
                })
                .collect(),
            (None, None) => vec![need],
        })
        .collect()
}

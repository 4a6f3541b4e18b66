//! The compile pipeline: load (with includes) → `extends:` → `!reference` → top-level keys
//! (stages, variables, defaults, workflow) → jobs → `parallel:` → logical checks (stages, needs,
//! dependencies) → workflow and job filtering for the pipeline's ref → the `PipelinePlan`.
//!
//! Errors come out in GitLab's order as far as practical: loading, extends, top-level entries,
//! job entries in file order, then the logical checks GitLab's `YamlProcessor` runs afterwards.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::budget::{size_of, size_of_map, Budget, MAX_COMPILED_BYTES};
use crate::error::{CompileError, Result};
use crate::job::{self, Defaults, JobSpec, Parallel};
use crate::keywords::{self, NeedSpec};
use crate::load::{self, IncludeEnv};
use crate::merge;
use crate::plan::{JobPlan, Need, PipelinePlan, When};
use crate::reference;
use crate::refs::{Policy, RefContext};
use crate::repository::Checkout;
use crate::rules::{self, Rule, RuleWhen, RulesKind};
use crate::value::{Map, Value};
use crate::CompileContext;

/// Top-level keys that are never jobs (GitLab's reserved `Root` entries).
const RESERVED: &[&str] = &[
    "default",
    "include",
    "before_script",
    "image",
    "services",
    "after_script",
    "variables",
    "stages",
    "types",
    "cache",
    "workflow",
];
const DEFAULT_STAGES: &[&str] = &["build", "test", "deploy"];
/// Jobs after `parallel:` expansion; far above real pipelines, low enough to bound the work.
const MAX_JOBS: usize = 10_000;

/// Compile for a concrete pipeline, or lint (no ref: keep every job).
pub(crate) enum Mode<'a, 'b> {
    Compile(&'a CompileContext<'b>),
    Lint,
}

/// A job that made it into the pipeline, with the attributes its rule decided.
struct Selected {
    spec: JobSpec,
    when: When,
    allow_failure: bool,
    rule_variables: Vec<(String, String)>,
    needs: Option<Vec<NeedSpec>>,
}

pub(crate) fn build(
    text: &str,
    repository: &dyn crate::Repository,
    mode: Mode<'_, '_>,
) -> Result<PipelinePlan> {
    let checkout = Checkout::new(repository);
    if text.trim().is_empty() {
        return Err(CompileError::new(
            "root",
            "Please provide content of .gitlab-ci.yml",
        ));
    }
    let ctx = match &mode {
        Mode::Compile(ctx) => Some(*ctx),
        Mode::Lint => None,
    };
    let env = IncludeEnv {
        checkout: &checkout,
        variables: ctx.map(|c| c.variables),
    };
    let (mut root, mut warnings) = load::load_config(text, &env)?;
    // Everything below copies parts of the file into jobs; each copy is charged before it is
    // made, so a small file cannot make a huge plan.
    let mut budget = Budget::new(MAX_COMPILED_BYTES);
    merge::resolve_extends(&mut root, &mut budget)?;
    reference::resolve_references(&mut root, &mut budget)?;

    let defaults = Defaults::parse(&root)?;
    let global_variables = match root.get("variables").filter(|v| !v.is_null()) {
        Some(v) => keywords::parse_variables(v, "variables")?,
        None => Vec::new(),
    };
    let global_raw = root
        .get("variables")
        .map(keywords::raw_keys)
        .unwrap_or_default();
    let stages = parse_stages(&root)?;
    let workflow_rules = parse_workflow(&root)?;

    let visible = visible_jobs(&root)?;
    let inherited_bytes = defaults_size(&root);
    let mut specs = Vec::with_capacity(visible.len());
    for (name, map) in visible {
        let own = size_of_map(map);
        budget.charge(own.saturating_add(inherited_bytes))?;
        let spec = job::parse_job(name, map, &defaults)?;
        // Each copy `parallel:` makes costs as much again.
        let copies = match &spec.parallel {
            Some(Parallel::Count(n)) => *n as usize,
            Some(Parallel::Matrix(combos)) => combos.len(),
            None => 1,
        };
        budget.charge((own + inherited_bytes).saturating_mul(copies.saturating_sub(1)))?;
        warnings.extend(spec.warnings.iter().map(|w| format!("jobs:{name} {w}")));
        specs.push(spec);
    }
    let specs = crate::parallel::expand(specs);
    if specs.len() > MAX_JOBS {
        return Err(CompileError::new(
            "jobs",
            format!("The pipeline has too many jobs (maximum is {MAX_JOBS})"),
        ));
    }
    // Every job carries the global and context variables: their bytes, and a string header
    // for each name and value.
    let pair_bytes = |(k, v): (&String, &String)| k.len() + v.len() + 16;
    let variables_bytes = global_variables
        .iter()
        .map(|(k, v)| pair_bytes((k, v)))
        .sum::<usize>()
        + ctx.map_or(0, |c| c.variables.iter().map(pair_bytes).sum());
    budget.charge(variables_bytes.saturating_mul(specs.len()))?;
    validate_logic(&specs, &stages)?;

    let (selected, globals) = match ctx {
        None => (select_all(specs), global_variables),
        Some(ctx) => {
            let globals = apply_workflow(
                workflow_rules.as_deref(),
                global_variables,
                (ctx, &checkout),
            )?;
            let selected = select(specs, &globals, workflow_rules.is_some(), (ctx, &checkout))?;
            (selected, globals)
        }
    };
    let plan = assemble(selected, (&globals, &global_raw), &stages, &checkout);
    Ok(PipelinePlan { warnings, ..plan })
}

/// `stages:` (or the old `types:`), nested arrays flattened, with `.pre` first and `.post` last.
/// What `default:` (and its older top-level spellings) may copy into each job.
fn defaults_size(root: &Map) -> usize {
    [
        "default",
        "before_script",
        "after_script",
        "image",
        "services",
        "cache",
    ]
    .iter()
    .filter_map(|key| root.get(key))
    .map(size_of)
    .sum()
}

fn parse_stages(root: &Map) -> Result<Vec<String>> {
    fn flatten(v: &Value, out: &mut Vec<String>) -> bool {
        match v {
            Value::Str(s) => {
                out.push(s.clone());
                true
            }
            Value::Seq(items) => items.iter().all(|i| flatten(i, out)),
            _ => false,
        }
    }
    let declared = root
        .get("stages")
        .filter(|v| !v.is_null())
        .map(|v| ("stages", v))
        .or_else(|| {
            root.get("types")
                .filter(|v| !v.is_null())
                .map(|v| ("types", v))
        });
    let mut user = Vec::new();
    match declared {
        None => user.extend(DEFAULT_STAGES.iter().map(|s| s.to_string())),
        Some((key, v @ Value::Seq(_))) => {
            if !flatten(v, &mut user) {
                return Err(CompileError::entry(
                    key,
                    "config should be an array of strings",
                ));
            }
        }
        Some((key, _)) => {
            return Err(CompileError::entry(
                key,
                "config should be an array of strings",
            ))
        }
    }
    let mut stages = vec![".pre".to_string()];
    for stage in user {
        if stage != ".pre" && stage != ".post" && !stages.contains(&stage) {
            stages.push(stage);
        }
    }
    stages.push(".post".to_string());
    Ok(stages)
}

fn parse_workflow(root: &Map) -> Result<Option<Vec<Rule>>> {
    match root.get("workflow") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Map(map)) => {
            let unknown = map.unknown_keys(&["rules", "name", "auto_cancel"]);
            if !unknown.is_empty() {
                return Err(CompileError::entry(
                    "workflow",
                    &format!("config contains unknown keys: {}", unknown.join(", ")),
                ));
            }
            map.get("rules")
                .filter(|v| !v.is_null())
                .map(|v| rules::parse_rules(v, "workflow", RulesKind::Workflow))
                .transpose()
        }
        Some(_) => Err(CompileError::entry("workflow", "config should be a hash")),
    }
}

/// The top-level keys that are jobs, in file order; hidden (`.name`) keys are skipped.
fn visible_jobs(root: &Map) -> Result<Vec<(&String, &Map)>> {
    let mut visible = Vec::new();
    for (name, value) in root.iter() {
        if RESERVED.contains(&name.as_str()) {
            continue;
        }
        let location = format!("jobs:{name}");
        if name.starts_with('.') {
            if value.is_blank() {
                return Err(CompileError::entry(&location, "config can't be blank"));
            }
            continue;
        }
        match value {
            Value::Map(map) if map.contains_key("script") || map.contains_key("trigger") => {
                visible.push((name, map))
            }
            Value::Map(map) if map.contains_key("run") => {
                return Err(CompileError::entry(
                    &location,
                    "config uses run:, which kiln does not support; use script:",
                ))
            }
            _ => {
                return Err(CompileError::entry(
                    &location,
                    "config should implement the script:, run:, or trigger: keyword",
                ))
            }
        }
    }
    if visible.is_empty() {
        return Err(CompileError::entry(
            "jobs",
            "config should contain at least one visible job",
        ));
    }
    Ok(visible)
}

/// GitLab's `YamlProcessor` logical validation: stages exist, needs and dependencies name
/// existing jobs in the same or an earlier stage, no duplicated needs, no needs cycles.
fn validate_logic(specs: &[JobSpec], stages: &[String]) -> Result<()> {
    let stage_of: HashMap<&str, Option<usize>> = specs
        .iter()
        .map(|s| (s.name.as_str(), stages.iter().position(|st| *st == s.stage)))
        .collect();
    for spec in specs {
        let name = &spec.name;
        let own = stage_of.get(name.as_str()).copied().flatten();
        let Some(own) = own else {
            return Err(CompileError::new(
                format!("jobs:{name}:stage"),
                format!(
                    "jobs:{name} chosen stage {} does not exist; available stages are {}",
                    spec.stage,
                    stages.join(", ")
                ),
            ));
        };
        let check = |other: &str, kind: &str, optional: bool, key: &str| -> Result<()> {
            let path = format!("jobs:{name}:{key}");
            match stage_of.get(other) {
                None if optional => Ok(()),
                None => Err(CompileError::new(
                    path,
                    format!("jobs:{name} job: undefined {kind}: {other}"),
                )),
                Some(Some(idx)) if *idx <= own => Ok(()),
                Some(_) => Err(CompileError::new(
                    path,
                    format!(
                        "jobs:{name} job: {kind} {other} is not defined in current or prior stages"
                    ),
                )),
            }
        };
        for dep in spec.dependencies.iter().flatten() {
            check(dep, "dependency", false, "dependencies")?;
        }
        let rule_needs = spec.rules.iter().flatten().filter_map(|r| r.needs.as_ref());
        for needs in spec.needs.iter().chain(rule_needs) {
            for need in needs {
                check(&need.job, "need", need.optional, "needs")?;
            }
            let mut seen = HashSet::new();
            let mut duplicated: Vec<&str> = Vec::new();
            for need in needs {
                if !seen.insert(need.job.as_str()) && !duplicated.contains(&need.job.as_str()) {
                    duplicated.push(&need.job);
                }
            }
            if !duplicated.is_empty() {
                return Err(CompileError::new(
                    format!("jobs:{name}:needs"),
                    format!(
                        "jobs:{name} has the following needs duplicated: {}.",
                        duplicated.join(", ")
                    ),
                ));
            }
        }
    }
    check_cycles(specs)
}

/// Same-stage needs make cycles possible; GitLab rejects them (its `Dag` tsort).
fn check_cycles(specs: &[JobSpec]) -> Result<()> {
    let graph: HashMap<&str, Vec<&str>> = specs
        .iter()
        .map(|s| {
            let needs = s.needs.iter().flatten().map(|n| n.job.as_str()).collect();
            (s.name.as_str(), needs)
        })
        .collect();
    // 0 = unvisited, 1 = on the current path, 2 = done; iterative DFS to stay off the stack.
    let mut state: HashMap<&str, u8> = HashMap::new();
    for spec in specs {
        let start = spec.name.as_str();
        if state.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        state.insert(start, 1);
        while let Some((node, next)) = stack.last().copied() {
            let children = graph.get(node).map(Vec::as_slice).unwrap_or_default();
            match children.get(next) {
                Some(child) => {
                    if let Some(top) = stack.last_mut() {
                        top.1 += 1;
                    }
                    match state.get(child).copied().unwrap_or(0) {
                        1 => {
                            return Err(CompileError::new(
                                "jobs",
                                "The pipeline has circular dependencies",
                            ))
                        }
                        0 if graph.contains_key(child) => {
                            state.insert(child, 1);
                            stack.push((child, 0));
                        }
                        _ => {}
                    }
                }
                None => {
                    state.insert(node, 2);
                    stack.pop();
                }
            }
        }
    }
    Ok(())
}

/// Lint: every job is kept with its job-level attributes.
fn select_all(specs: Vec<JobSpec>) -> Vec<Selected> {
    specs
        .into_iter()
        .map(|spec| Selected {
            when: spec.when,
            allow_failure: spec.allow_failure.unwrap_or(spec.when == When::Manual),
            rule_variables: Vec::new(),
            needs: spec.needs.clone(),
            spec,
        })
        .collect()
}

/// The variables `if:` expressions see: the file's globals, then the job's, then the context's
/// (predefined and trigger variables), later ones winning. Letting the context win keeps
/// trigger/web variables able to override file defaults, as in GitLab; the price is that a
/// file cannot shadow a predefined CI_* variable for rule evaluation. Values that refer to
/// others are expanded first, as GitLab's rules see `sort_and_expand_all`'s result.
fn eval_variables(
    layers: &[&[(String, String)]],
    ctx: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for layer in layers {
        for (k, v) in layer.iter() {
            vars.insert(k.clone(), v.clone());
        }
    }
    for (k, v) in ctx {
        vars.insert(k.clone(), v.clone());
    }
    if !vars.values().any(|v| v.contains(['$', '%'])) {
        return vars;
    }
    let listed = vars
        .into_iter()
        .map(|(k, v)| crate::variables::JobVariable::new(k, v))
        .collect();
    crate::variables::expand_all(listed)
        .into_iter()
        .map(|v| (v.key, v.value))
        .collect()
}

fn overlay(base: &mut Vec<(String, String)>, over: &[(String, String)]) {
    for (k, v) in over {
        match base.iter_mut().find(|(existing, _)| existing == k) {
            Some(slot) => slot.1 = v.clone(),
            None => base.push((k.clone(), v.clone())),
        }
    }
}

/// `workflow:rules`: no match or `when: never` means no pipeline; a matching rule's
/// `variables:` override the global ones.
fn apply_workflow(
    workflow: Option<&[Rule]>,
    mut globals: Vec<(String, String)>,
    (ctx, checkout): (&CompileContext<'_>, &Checkout<'_>),
) -> Result<Vec<(String, String)>> {
    let Some(rules) = workflow else {
        return Ok(globals);
    };
    let vars = eval_variables(&[&globals], ctx.variables);
    match rules::first_match(rules, &vars, checkout) {
        Some(rule) if !rule.is_never() => {
            overlay(&mut globals, &rule.variables);
            Ok(globals)
        }
        _ => Err(CompileError::new(
            "workflow",
            "Pipeline filtered out by workflow rules.",
        )),
    }
}

fn inherited_globals(spec: &JobSpec, globals: &[(String, String)]) -> Vec<(String, String)> {
    globals
        .iter()
        .filter(|(k, _)| spec.inherit_variables.allows(k))
        .cloned()
        .collect()
}

/// Keeps the jobs whose rules or only/except accept this pipeline, then checks that what the
/// kept jobs need was kept too.
fn select(
    specs: Vec<JobSpec>,
    globals: &[(String, String)],
    has_workflow_rules: bool,
    (ctx, checkout): (&CompileContext<'_>, &Checkout<'_>),
) -> Result<Vec<Selected>> {
    let refs = RefContext {
        ref_name: ctx.ref_name,
        tag: ctx.tag,
        source: ctx.source,
    };
    let mut selected = Vec::new();
    for spec in specs {
        let job_globals = inherited_globals(&spec, globals);
        let vars = eval_variables(&[&job_globals, &spec.variables], ctx.variables);
        let base_allow_failure = spec.allow_failure.unwrap_or(spec.when == When::Manual);
        if let Some(job_rules) = &spec.rules {
            let Some(rule) = rules::first_match(job_rules, &vars, checkout) else {
                continue;
            };
            let when = match rule.when {
                None => spec.when,
                Some(RuleWhen::Never) => continue,
                Some(RuleWhen::OnSuccess) => When::OnSuccess,
                Some(RuleWhen::OnFailure) => When::OnFailure,
                Some(RuleWhen::Always) => When::Always,
                Some(RuleWhen::Manual) => When::Manual,
                Some(RuleWhen::Delayed) => When::Delayed,
            };
            let allow_failure = rule.allow_failure.unwrap_or(base_allow_failure);
            let rule_variables = rule.variables.clone();
            let needs = rule.needs.clone().or_else(|| spec.needs.clone());
            selected.push(Selected {
                spec,
                when,
                allow_failure,
                rule_variables,
                needs,
            });
            continue;
        }
        // With neither only nor rules, GitLab defaults to `only: [branches, tags]`, unless
        // workflow:rules exist (then jobs follow the workflow decision).
        let default_only = (!has_workflow_rules).then(Policy::default_only);
        let only = spec.only.as_ref().or(default_only.as_ref());
        let included = only.is_none_or(|p| p.all_satisfied(&refs, &vars))
            && !spec
                .except
                .as_ref()
                .is_some_and(|p| p.any_satisfied(&refs, &vars));
        if included {
            selected.push(Selected {
                when: spec.when,
                allow_failure: base_allow_failure,
                rule_variables: Vec::new(),
                needs: spec.needs.clone(),
                spec,
            });
        }
    }
    check_selected(&mut selected)?;
    // GitLab does not create a pipeline that has no jobs, or only `.pre`/`.post` jobs ("No
    // stages / jobs for this pipeline."); we return the empty plan and let the caller say so.
    if selected
        .iter()
        .all(|s| s.spec.stage == ".pre" || s.spec.stage == ".post")
    {
        selected.clear();
    }
    Ok(selected)
}

/// Needs on jobs that were filtered out fail the pipeline unless optional (GitLab's seeding
/// error); dependencies on them are dropped.
fn check_selected(selected: &mut [Selected]) -> Result<()> {
    let kept: HashSet<String> = selected.iter().map(|s| s.spec.name.clone()).collect();
    for job in selected.iter_mut() {
        if let Some(needs) = job.needs.as_mut() {
            if let Some(missing) = needs.iter().find(|n| !n.optional && !kept.contains(&n.job)) {
                let name = &job.spec.name;
                return Err(CompileError::new(
                    format!("jobs:{name}:needs"),
                    format!(
                        "'{name}' job needs '{0}' job, but '{0}' does not exist in the pipeline. \
                         This might be because of the only, except, or rules keywords. To need a \
                         job that sometimes does not exist in the pipeline, use needs:optional.",
                        missing.job
                    ),
                ));
            }
            needs.retain(|n| kept.contains(&n.job));
        }
        if let Some(deps) = job.spec.dependencies.as_mut() {
            deps.retain(|d| kept.contains(d));
        }
    }
    Ok(())
}

fn assemble(
    selected: Vec<Selected>,
    (globals, global_raw): (&[(String, String)], &[String]),
    stages: &[String],
    checkout: &Checkout,
) -> PipelinePlan {
    let used: Vec<String> = stages
        .iter()
        .filter(|st| selected.iter().any(|s| &s.spec.stage == *st))
        .cloned()
        .collect();
    let mut jobs: Vec<JobPlan> = selected
        .into_iter()
        .map(|sel| {
            let spec = sel.spec;
            let mut variables: BTreeMap<String, String> =
                inherited_globals(&spec, globals).into_iter().collect();
            // Raw is decided by the definition that wins: the rule's, the job's, the file's.
            let raw_variables = variables
                .keys()
                .chain(spec.variables.iter().map(|(k, _)| k))
                .filter(|k| {
                    let own = spec.variables.iter().any(|(j, _)| j == *k);
                    !sel.rule_variables.iter().any(|(r, _)| r == *k)
                        && if own {
                            spec.raw_variables.contains(k)
                        } else {
                            global_raw.contains(k)
                        }
                })
                .cloned()
                .collect::<std::collections::BTreeSet<String>>()
                .into_iter()
                .collect();
            variables.extend(spec.variables);
            variables.extend(sel.rule_variables);
            JobPlan {
                stage_idx: used.iter().position(|s| *s == spec.stage).unwrap_or(0),
                name: spec.name,
                stage: spec.stage,
                before_script: spec.before_script,
                script: spec.script,
                after_script: spec.after_script,
                variables: variables.into_iter().collect(),
                raw_variables,
                when: sel.when,
                allow_failure: sel.allow_failure,
                needs: sel.needs.map(|needs| {
                    needs
                        .into_iter()
                        .map(|n| Need {
                            job: n.job,
                            artifacts: n.artifacts,
                            optional: n.optional,
                        })
                        .collect()
                }),
                dependencies: spec.dependencies,
                artifacts: spec.artifacts,
                coverage: spec.coverage,
                timeout_secs: spec.timeout_secs,
                tags: spec.tags,
                retry: spec.retry,
                image: spec.image,
                services: spec.services,
                environment: spec.environment,
                cache: crate::cache::resolve(spec.cache, checkout),
                trigger: spec.trigger,
                warnings: spec.warnings,
            }
        })
        .collect();
    jobs.sort_by_key(|j| j.stage_idx);
    PipelinePlan {
        stages: used,
        jobs,
        warnings: Vec::new(),
    }
}

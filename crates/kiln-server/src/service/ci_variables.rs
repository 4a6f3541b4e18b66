//! Project and instance CI/CD variables: GitLab's validation, encryption at rest, and what a
//! job receives of them.

use crate::{ApiError, AppInner};
use kiln_store::{StoreError, VariableRecord};
use serde_json::json;

/// A variable in clear, as the API shows it and jobs receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub id: i64,
    pub key: String,
    pub value: String,
    pub file: bool,
    pub protected: bool,
    pub masked: bool,
    pub raw: bool,
    pub environment_scope: String,
    pub description: Option<String>,
}

/// What a create or update asks for (None: keep / the default).
#[derive(Debug, Clone, Default)]
pub struct VariableInput {
    pub key: Option<String>,
    pub value: Option<String>,
    pub variable_type: Option<String>,
    pub protected: Option<bool>,
    pub masked: Option<bool>,
    pub raw: Option<bool>,
    pub environment_scope: Option<String>,
    pub description: Option<String>,
}

/// Rails' `{"message": {"<field>": ["<problem>"]}}`.
fn invalid(field: &str, problem: &str) -> ApiError {
    ApiError::Validation(json!({ field: [problem] }))
}

/// GitLab's `Ci::Maskable`: at least 8 characters of the Base64 alphabet and `@:.~-_+/=`, on
/// one line.
pub fn maskable(value: &str) -> bool {
    value.len() >= 8
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@:.~-_+/=".contains(&b))
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn decrypt(app: &AppInner, record: VariableRecord) -> Result<Variable, ApiError> {
    let value = app
        .cipher
        .decrypt(&record.value)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Variable {
        id: record.id,
        key: record.key,
        value,
        file: record.variable_type == "file",
        protected: record.protected,
        masked: record.masked,
        raw: record.raw,
        environment_scope: record.environment_scope,
        description: record.description,
    })
}

pub async fn list(app: &AppInner, project_id: Option<i64>) -> Result<Vec<Variable>, ApiError> {
    let records = app.store.variables().list(project_id).await?;
    records.into_iter().map(|r| decrypt(app, r)).collect()
}

async fn find(
    app: &AppInner,
    project_id: Option<i64>,
    key: &str,
    scope: Option<&str>,
) -> Result<VariableRecord, ApiError> {
    match app.store.variables().get(project_id, key, scope).await {
        Ok(record) => Ok(record),
        Err(StoreError::NotFound) => Err(ApiError::NotFound("Variable")),
        Err(err) => Err(err.into()),
    }
}

pub async fn get(
    app: &AppInner,
    project_id: Option<i64>,
    key: &str,
    scope: Option<&str>,
) -> Result<Variable, ApiError> {
    decrypt(app, find(app, project_id, key, scope).await?)
}

/// Checks `input` over `base` (the variable as it is, or the defaults) and makes the record
/// to store.
fn record(
    app: &AppInner,
    base: VariableRecord,
    plain: &str,
    input: VariableInput,
) -> Result<VariableRecord, ApiError> {
    let value = input.value.unwrap_or_else(|| plain.to_owned());
    let variable_type = input.variable_type.unwrap_or(base.variable_type);
    if !matches!(variable_type.as_str(), "env_var" | "file") {
        return Err(ApiError::Params(
            "variable_type does not have a valid value".into(),
        ));
    }
    let masked = input.masked.unwrap_or(base.masked);
    if masked && !maskable(&value) {
        return Err(invalid("value", "is invalid"));
    }
    let scope = input.environment_scope.unwrap_or(base.environment_scope);
    if scope.is_empty() {
        return Err(invalid("environment_scope", "can't be blank"));
    }
    Ok(VariableRecord {
        value: app.cipher.encrypt(&value),
        variable_type,
        protected: input.protected.unwrap_or(base.protected),
        masked,
        raw: input.raw.unwrap_or(base.raw),
        environment_scope: scope,
        description: input.description.or(base.description),
        ..base
    })
}

pub async fn create(
    app: &AppInner,
    project_id: Option<i64>,
    mut input: VariableInput,
) -> Result<Variable, ApiError> {
    let key = input.key.take().unwrap_or_default();
    if !valid_key(&key) {
        return Err(invalid("key", "can contain only letters, digits and '_'."));
    }
    if input.value.is_none() {
        return Err(ApiError::Params("value is missing".into()));
    }
    let base = VariableRecord {
        id: 0,
        project_id,
        key: key.clone(),
        value: Vec::new(),
        variable_type: "env_var".into(),
        protected: false,
        masked: false,
        raw: false,
        environment_scope: "*".into(),
        description: None,
    };
    let new = record(app, base, "", input)?;
    match app.store.variables().create(&new).await {
        Ok(stored) => decrypt(app, stored),
        Err(StoreError::Conflict(_)) => {
            Err(invalid("key", &format!("({key}) has already been taken")))
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn update(
    app: &AppInner,
    project_id: Option<i64>,
    key: &str,
    scope: Option<&str>,
    input: VariableInput,
) -> Result<Variable, ApiError> {
    let existing = find(app, project_id, key, scope).await?;
    let plain = decrypt(app, existing.clone())?.value;
    let changed = record(app, existing, &plain, input)?;
    match app.store.variables().update(&changed).await {
        Ok(stored) => decrypt(app, stored),
        Err(StoreError::Conflict(_)) => {
            Err(invalid("key", &format!("({key}) has already been taken")))
        }
        Err(err) => Err(err.into()),
    }
}

pub async fn delete(
    app: &AppInner,
    project_id: Option<i64>,
    key: &str,
    scope: Option<&str>,
) -> Result<Variable, ApiError> {
    let existing = find(app, project_id, key, scope).await?;
    let shown = decrypt(app, existing.clone())?;
    app.store.variables().delete(existing.id).await?;
    Ok(shown)
}

/// The instance's and the project's variables a job receives, instance first (the project's
/// win): protected ones only when its ref was protected as its pipeline was made, and only
/// those of every environment (`*`: Kiln's jobs have none of their own).
/// Read through the access cache, which every variable change invalidates.
pub async fn for_job(
    app: &AppInner,
    project: &kiln_store::ProjectRecord,
    protected_ref: bool,
) -> Result<Vec<Variable>, ApiError> {
    let version = app.store.versions().access();
    let all = match app.cache.variables.get(&project.id, version) {
        Some(all) => all,
        None => {
            let records = app.store.variables().for_project(project.id).await?;
            let all: Vec<Variable> = records
                .into_iter()
                .map(|r| decrypt(app, r))
                .collect::<Result<_, _>>()?;
            app.cache.variables.insert(project.id, all.clone(), version);
            all
        }
    };
    Ok(all
        .into_iter()
        .filter(|v| v.environment_scope == "*" && (protected_ref || !v.protected))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_gitlab_would_mask() {
        assert!(super::maskable("abcdefgh"));
        assert!(super::maskable("a+b/c=d@e:f.g~h-i_j"));
        assert!(!super::maskable("short"));
        assert!(!super::maskable("has space here"));
        assert!(!super::maskable("two\nlines!!"));
        assert!(!super::maskable("ünïcödé-value"));
    }
}

//! Loading a policy directory: reading the files, parsing, strict validation, entities, hash.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy as cedar;
use cedar_policy::{Context, Effect, Entities, Entity, PolicyId, ValidationMode, Validator};
use sha2::{Digest, Sha256};

use super::engine::{PolicyMeta, PolicySet, approval_ids, uid};
use super::error::{LoadError, LoadErrors, diagnostic_text, from_diagnostic};
use super::{
    ENTITIES_FILE, MANAGED_OBJECT_TYPE, NAMESPACE, POLICY_EXTENSION, SCHEMA_FILE,
    UNAUTHENTICATED_ID,
};

/// Annotation keys a policy may carry; anything else is a (likely misspelt) load error.
const KNOWN_ANNOTATIONS: &[&str] = &["id", "reason", "mode", "description", "approval"];

/// Methods the gateway guards from day one; the schema must declare them.
const REQUIRED_ACTIONS: &[&str] = &["EnterMaintenanceMode_Task", "ChangeLockdownMode"];

/// Entity types the engine builds requests with; the schema must declare them.
const REQUIRED_TYPES: &[&str] = &["User", "Group", "Unauthenticated", MANAGED_OBJECT_TYPE];

/// One file read from the policy directory.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// The file name inside the directory.
    pub(crate) name: String,
    /// `dir/name`, for messages.
    pub(crate) path: PathBuf,
    /// The contents.
    pub(crate) text: String,
}

/// The names of the files that make up a policy set in `dir` (schema, `*.cedar`, entities),
/// sorted by name.
pub(crate) fn policy_file_names(dir: &Path) -> Result<Vec<String>, LoadError> {
    let entries = fs::read_dir(dir).map_err(|e| {
        LoadError::general(format!(
            "cannot read policy directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            LoadError::general(format!(
                "cannot read policy directory {}: {e}",
                dir.display()
            ))
        })?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(LoadError::in_file(
                &entry.path(),
                "file name is not valid UTF-8",
            ));
        };
        if is_policy_file_name(&name) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// True for the names that belong to a policy set.
pub(crate) fn is_policy_file_name(name: &str) -> bool {
    name == SCHEMA_FILE
        || name == ENTITIES_FILE
        || (name.ends_with(POLICY_EXTENSION) && name.len() > POLICY_EXTENSION.len())
}

/// SHA-256 (hex) over the files' names and contents, in name order; each name and content is
/// length-prefixed so that no two different file sets hash alike.
pub(crate) fn hash_files(files: &[SourceFile]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update((file.name.len() as u64).to_le_bytes());
        hasher.update(file.name.as_bytes());
        hasher.update((file.text.len() as u64).to_le_bytes());
        hasher.update(file.text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Loads and strictly validates a policy directory, collecting every problem.
pub(crate) fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
    let names = policy_file_names(dir).map_err(LoadErrors::one)?;
    let mut errors = Vec::new();
    let mut files = Vec::new();
    for name in names {
        let path = dir.join(&name);
        match fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => files.push(SourceFile { name, path, text }),
                Err(_) => errors.push(LoadError::in_file(&path, "file is not valid UTF-8")),
            },
            Err(e) => errors.push(LoadError::in_file(&path, format!("cannot read: {e}"))),
        }
    }
    let hash = hash_files(&files);

    // Schema.
    let schema = match files.iter().find(|f| f.name == SCHEMA_FILE) {
        None => {
            errors.push(LoadError::in_file(
                &dir.join(SCHEMA_FILE),
                "the schema file is missing",
            ));
            None
        }
        Some(file) => load_schema(file, &mut errors),
    };

    // Policies.
    let mut policies = Vec::new();
    for file in files.iter().filter(|f| f.name.ends_with(POLICY_EXTENSION)) {
        parse_policy_file(file, &mut policies, &mut errors);
    }
    let (enforced, monitor, meta) = assemble(&policies, &mut errors);

    let Some(schema) = schema else {
        return Err(LoadErrors::new(errors));
    };

    // Strict validation of both sets.
    // The first policy with an id is the one in the set (later duplicates were refused).
    let mut by_id: HashMap<&str, &ParsedPolicy<'_>> = HashMap::new();
    for p in &policies {
        by_id.entry(p.id.as_str()).or_insert(p);
    }
    let validator = Validator::new(schema.clone());
    let mut found = Vec::new();
    for set in [&enforced, &monitor] {
        let result = validator.validate(set, ValidationMode::Strict);
        for e in result.validation_errors() {
            found.push(locate_validation(&by_id, e.policy_id(), e, ""));
        }
        for w in result.validation_warnings() {
            found.push(locate_validation(
                &by_id,
                w.policy_id(),
                w,
                "warning treated as error: ",
            ));
        }
    }
    errors.extend(collapse_per_action(found));

    // Schema contract with the engine.
    let actions = check_schema(&schema, &dir.join(SCHEMA_FILE), &mut errors);

    // Entities.
    let entities = load_entities(&files, dir, &schema, &mut errors);

    if !errors.is_empty() {
        return Err(LoadErrors::new(errors));
    }
    let Some(entities) = entities else {
        return Err(LoadErrors::one(LoadError::general(
            "internal error: entities missing without an error",
        )));
    };
    let resource_types: HashSet<String> = schema
        .resources()
        .filter(|t| t.namespace() == NAMESPACE)
        .map(|t| t.basename().to_string())
        .collect();
    let guarded_set = actions.methods.iter().cloned().collect();
    let index = super::index::build(
        &schema,
        &actions.methods,
        (&enforced, &monitor),
        &entities,
        &resource_types,
        &approval_ids(&meta),
    )
    .map_err(|e| LoadErrors::one(LoadError::general(e)))?;
    Ok(PolicySet {
        schema,
        enforced,
        monitor,
        entities,
        hash,
        meta,
        guarded: actions.methods,
        guarded_set,
        groups: actions.groups,
        resource_types,
        slices: index.slices,
        types: index.types,
        memberships: index.memberships,
        principal_stores: Default::default(),
        ip_values: Default::default(),
        enumerated: files
            .iter()
            .find(|f| f.name == SCHEMA_FILE)
            .and_then(|file| super::checked::enumerated_types(&file.text)),
        checked_shapes: Default::default(),
        narrowed: Default::default(),
        #[cfg(test)]
        whole_sets: Default::default(),
    })
}

/// Parses the schema; warnings are errors too.
fn load_schema(file: &SourceFile, errors: &mut Vec<LoadError>) -> Option<cedar::Schema> {
    match cedar::Schema::from_cedarschema_str(&file.text) {
        Ok((schema, warnings)) => {
            let before = errors.len();
            for w in warnings {
                errors.push(from_diagnostic(
                    &file.path,
                    &file.text,
                    &w,
                    "warning treated as error: ",
                ));
            }
            (errors.len() == before).then_some(schema)
        }
        Err(e) => {
            push_diagnostic_tree(&file.path, &file.text, &e, "", errors);
            None
        }
    }
}

/// Pushes a diagnostic and its related diagnostics (e.g. the 2nd..Nth parse errors).
fn push_diagnostic_tree(
    path: &Path,
    text: &str,
    diag: &dyn miette::Diagnostic,
    prefix: &str,
    errors: &mut Vec<LoadError>,
) {
    let mut push = |error: LoadError| {
        if !errors.contains(&error) {
            errors.push(error);
        }
    };
    push(from_diagnostic(path, text, diag, prefix));
    if let Some(related) = diag.related() {
        for r in related {
            push(from_diagnostic(path, text, r, prefix));
        }
    }
}

/// The validator reports a problem once per action a policy may apply to; keep one message
/// per place and problem, naming the first action and counting the others.
fn collapse_per_action(found: Vec<LoadError>) -> Vec<LoadError> {
    let mut out: Vec<(LoadError, String, usize)> = Vec::new();
    for error in found {
        let key = without_action_ids(&error.message);
        let same = out.iter_mut().find(|(e, k, _)| {
            *k == key && e.file == error.file && e.line == error.line && e.column == error.column
        });
        match same {
            Some((_, _, more)) => *more += 1,
            None => out.push((error, key, 0)),
        }
    }
    out.into_iter()
        .map(|(mut error, _, more)| {
            if more > 0 {
                error.message.push_str(&format!(
                    " (and {more} more action{})",
                    if more == 1 { "" } else { "s" }
                ));
            }
            error
        })
        .collect()
}

/// The message with every `Action::"name"` replaced by `Action::"*"`.
fn without_action_ids(message: &str) -> String {
    const MARK: &str = "Action::\"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(MARK) {
        let after = start + MARK.len();
        out.push_str(&rest[..after]);
        match rest[after..].find('"') {
            Some(end) => {
                out.push('*');
                rest = &rest[after + end..];
            }
            None => {
                rest = &rest[after..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A policy as read from its file, before it joins a set.
struct ParsedPolicy<'a> {
    /// The `@id` annotation.
    id: String,
    policy: cedar::Policy,
    file: &'a SourceFile,
    /// Byte offset of the policy's text in the file.
    offset: usize,
    monitor: bool,
    reason: Option<String>,
    /// The `@approval("group")` annotation.
    approval: Option<String>,
}

impl ParsedPolicy<'_> {
    fn error(&self, message: impl Into<String>) -> LoadError {
        LoadError::at(&self.file.path, &self.file.text, self.offset, message)
    }

    fn location(&self) -> String {
        let (line, _) = super::error::line_col(&self.file.text, self.offset);
        format!("{}:{line}", self.file.path.display())
    }
}

/// Parses one `.cedar` file, checks each policy's annotations and records the policies.
fn parse_policy_file<'a>(
    file: &'a SourceFile,
    out: &mut Vec<ParsedPolicy<'a>>,
    errors: &mut Vec<LoadError>,
) {
    let set = match cedar::PolicySet::from_str(&file.text) {
        Ok(set) => set,
        Err(e) => {
            push_diagnostic_tree(&file.path, &file.text, &e, "", errors);
            return;
        }
    };
    // Templates (policies with slots) cannot be enforced on their own.
    for template in set.templates() {
        let offset = find_offset(&file.text, 0, template.to_string().as_str());
        errors.push(LoadError::at(
            &file.path,
            &file.text,
            offset,
            "policy templates (with ?principal / ?resource slots) are not supported",
        ));
    }
    // The parser names policies policy0, policy1, ... in file order.
    let mut in_order: Vec<(usize, &cedar::Policy)> = set
        .policies()
        .map(|p| {
            let n = p
                .id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            (n, p)
        })
        .collect();
    in_order.sort_by_key(|(n, _)| *n);

    let mut cursor = 0;
    for (_, policy) in in_order {
        let offset = match policy.to_cedar() {
            Some(text) => {
                let offset = find_offset(&file.text, cursor, &text);
                cursor = offset + text.len();
                offset
            }
            None => cursor,
        };
        let mut parsed = ParsedPolicy {
            id: String::new(),
            policy: policy.clone(),
            file,
            offset,
            monitor: false,
            reason: policy.annotation("reason").map(str::to_string),
            approval: policy.annotation("approval").map(|g| g.trim().to_string()),
        };
        for (key, _) in policy.annotations() {
            if !KNOWN_ANNOTATIONS.contains(&key) {
                errors.push(parsed.error(format!(
                    "unknown annotation @{key} (known: {})",
                    KNOWN_ANNOTATIONS
                        .iter()
                        .map(|k| format!("@{k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        match policy.annotation("id") {
            None => {
                errors.push(parsed.error("policy has no @id(\"...\") annotation"));
                continue;
            }
            Some(id) if !valid_id(id) => {
                errors.push(parsed.error(format!(
                    "invalid @id(\"{id}\"): use letters, digits, '-', '_', '.', starting with a letter or digit"
                )));
                continue;
            }
            Some(id) => parsed.id = id.to_string(),
        }
        match policy.annotation("mode") {
            None | Some("enforce") => {}
            Some("monitor") => {
                parsed.monitor = true;
                if policy.effect() == Effect::Permit {
                    errors.push(parsed.error(format!(
                        "policy {}: a @mode(\"monitor\") policy must be a forbid (a monitor permit would decide nothing)",
                        parsed.id
                    )));
                    continue;
                }
            }
            Some(other) => {
                errors.push(parsed.error(format!(
                    "policy {}: unknown @mode(\"{other}\"): use \"monitor\" or \"enforce\"",
                    parsed.id
                )));
                continue;
            }
        }
        if let Some(group) = &parsed.approval {
            let problem = if policy.effect() == Effect::Permit {
                Some("an @approval policy must be a forbid (its match is what an approval lifts)")
            } else if parsed.monitor {
                Some(
                    "an @approval policy cannot be @mode(\"monitor\") (a monitor forbid never blocks)",
                )
            } else if group.is_empty() || group.chars().any(|c| c.is_whitespace() || c == '"') {
                Some("@approval names the approver group, e.g. @approval(\"change-approvers\")")
            } else {
                None
            };
            if let Some(problem) = problem {
                errors.push(parsed.error(format!("policy {}: {problem}", parsed.id)));
                continue;
            }
        }
        if let Some(reason) = &parsed.reason
            && reason.trim().is_empty()
        {
            errors.push(parsed.error(format!("policy {}: @reason is empty", parsed.id)));
        }
        out.push(parsed);
    }
}

/// The offset of `needle` in `text` at or after `from` (falls back to `from`).
fn find_offset(text: &str, from: usize, needle: &str) -> usize {
    text.get(from..)
        .and_then(|rest| rest.find(needle))
        .map_or(from, |i| from + i)
}

/// Policy ids: `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 128 characters.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Splits the parsed policies into the enforced and monitor sets; duplicate ids are errors.
fn assemble(
    policies: &[ParsedPolicy<'_>],
    errors: &mut Vec<LoadError>,
) -> (
    cedar::PolicySet,
    cedar::PolicySet,
    BTreeMap<String, PolicyMeta>,
) {
    let mut enforced = cedar::PolicySet::new();
    let mut monitor = cedar::PolicySet::new();
    let mut meta: BTreeMap<String, PolicyMeta> = BTreeMap::new();
    for p in policies {
        if let Some(first) = meta.get(&p.id) {
            errors.push(p.error(format!(
                "duplicate policy id {} (first defined at {})",
                p.id, first.location
            )));
            continue;
        }
        let policy = p.policy.new_id(PolicyId::new(&p.id));
        let target = if p.monitor {
            &mut monitor
        } else {
            &mut enforced
        };
        if let Err(e) = target.add(policy) {
            errors.push(p.error(format!("policy {}: {}", p.id, diagnostic_text(&e))));
            continue;
        }
        meta.insert(
            p.id.clone(),
            PolicyMeta {
                reason: p.reason.clone(),
                location: p.location(),
                monitor: p.monitor,
                approval: p.approval.clone(),
            },
        );
    }
    (enforced, monitor, meta)
}

/// Places a validation error or warning in its policy's file.
fn locate_validation(
    by_id: &HashMap<&str, &ParsedPolicy<'_>>,
    id: &PolicyId,
    diag: &dyn miette::Diagnostic,
    prefix: &str,
) -> LoadError {
    let id = id.to_string();
    // Cedar's messages usually name the policy already ("for policy `x`, ...").
    let prefix = if diag.to_string().contains(&format!("policy `{id}`")) {
        prefix.to_string()
    } else {
        format!("{prefix}policy {id}: ")
    };
    match by_id.get(id.as_str()) {
        Some(p) => {
            let mut error = from_diagnostic(&p.file.path, &p.file.text, diag, &prefix);
            if error.line.is_none() {
                error = p.error(error.message);
            }
            error
        }
        None => LoadError::general(format!("{prefix}{}", diagnostic_text(diag))),
    }
}

/// What the schema declares, as the engine needs it.
struct DeclaredActions {
    /// Methods (actions that are not groups), sorted.
    methods: Vec<String>,
    /// Action groups.
    groups: HashSet<String>,
}

/// Checks what the engine relies on: the entity types it builds, the day-one methods, and that
/// every declared method accepts the common context (plus the typed body for the two day-one
/// methods).
fn check_schema(
    schema: &cedar::Schema,
    path: &Path,
    errors: &mut Vec<LoadError>,
) -> DeclaredActions {
    let declared_types: HashSet<String> = schema
        .entity_types()
        .filter(|t| t.namespace() == NAMESPACE)
        .map(|t| t.basename().to_string())
        .collect();
    for ty in REQUIRED_TYPES {
        if !declared_types.contains(*ty) {
            errors.push(LoadError::in_file(
                path,
                format!("the schema must declare entity type {NAMESPACE}::{ty}"),
            ));
        }
    }
    let groups: HashSet<String> = schema
        .action_groups()
        .filter(|a| a.type_name().namespace() == NAMESPACE)
        .map(|a| a.id().unescaped().to_string())
        .collect();
    let mut methods: Vec<String> = schema
        .actions()
        .filter(|a| a.type_name().namespace() == NAMESPACE)
        .map(|a| a.id().unescaped().to_string())
        .filter(|name| !groups.contains(name))
        .collect();
    methods.sort();
    for required in REQUIRED_ACTIONS {
        if !methods.iter().any(|m| m == required) {
            errors.push(LoadError::in_file(
                path,
                format!("the schema must declare action {NAMESPACE}::Action::\"{required}\""),
            ));
        }
    }
    for method in &methods {
        let Ok(action) = uid("Action", method) else {
            continue;
        };
        let probe = probe_context(method);
        if let Err(e) = Context::from_json_value(probe, Some((schema, &action))) {
            errors.push(LoadError::in_file(
                path,
                format!(
                    "action {method}: its context must be the common fields (protocol, indirect, route, method, client_ip, hour_utc, weekday, ticket?, effect?, schedule?){}: {}",
                    if REQUIRED_ACTIONS.contains(&method.as_str()) {
                        " plus its typed body"
                    } else {
                        " and no body (use `context: CallContext`)"
                    },
                    diagnostic_text(&e)
                ),
            ));
        }
    }
    DeclaredActions { methods, groups }
}

/// A minimal well-formed context for `method`, as the gateway builds it.
fn probe_context(method: &str) -> serde_json::Value {
    let mut context = serde_json::json!({
        "protocol": "json",
        "indirect": false,
        "route": "direct",
        "method": "X",
        "client_ip": "127.0.0.1",
        "hour_utc": 0,
        "weekday": 0,
        "ticket": {
            "id": "CHG-0", "kind": "pattern", "verified": true,
            "covers_target": true, "covers_action": true, "expires_at": 0
        },
    });
    let body = match method {
        "EnterMaintenanceMode_Task" => Some(serde_json::json!({
            "timeout": 0,
            "evacuatePoweredOffVms": false,
            "maintenanceSpec": {
                "vsanMode": { "objectAction": "ensureObjectAccessibility" },
                "purpose": "hostUpgrade",
                "evacMode": { "workloadNonDisruptive": false },
            },
        })),
        "ChangeLockdownMode" => Some(serde_json::json!({ "mode": "lockdownNormal" })),
        _ => None,
    };
    if let (Some(body), Some(map)) = (body, context.as_object_mut()) {
        map.insert("body".to_string(), body);
    }
    context
}

/// Loads `entities.json` (if present) against the schema and adds the action entities and
/// the `Unauthenticated` principal.
fn load_entities(
    files: &[SourceFile],
    dir: &Path,
    schema: &cedar::Schema,
    errors: &mut Vec<LoadError>,
) -> Option<Entities> {
    let (text, path) = match files.iter().find(|f| f.name == ENTITIES_FILE) {
        Some(file) => (file.text.as_str(), file.path.clone()),
        None => ("[]", dir.join(ENTITIES_FILE)),
    };
    let entities = match Entities::from_json_str(text, Some(schema)) {
        Ok(entities) => entities,
        Err(e) => {
            push_diagnostic_tree(&path, text, &e, "", errors);
            return None;
        }
    };
    let anonymous = match uid("Unauthenticated", UNAUTHENTICATED_ID) {
        Ok(anonymous) => anonymous,
        Err(e) => {
            errors.push(LoadError::general(e));
            return None;
        }
    };
    if entities.get(&anonymous).is_some() {
        return Some(entities);
    }
    match entities.upsert_entities([Entity::with_uid(anonymous)], Some(schema)) {
        Ok(entities) => Some(entities),
        Err(e) => {
            errors.push(LoadError::in_file(&path, diagnostic_text(&e)));
            None
        }
    }
}

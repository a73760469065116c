//! The ECS view of a raw CloudTrail record: the fields Elastic's AWS integration would have
//! indexed, computed field by field from the raw record when a rule asks for one.
//!
//! Elastic rules are written against the documents produced by the `aws.cloudtrail` ingest
//! pipeline of elastic/integrations
//! (`packages/aws/data_stream/cloudtrail/elasticsearch/ingest_pipeline/default.yml`, read at
//! commit 0046748f; the file is Elastic License 2.0 and none of it is copied here). vigil sees
//! the raw record, so [`derive`] recomputes one ECS field from it, following that pipeline
//! processor by processor. The comments on each field name the processor they follow.
//!
//! Points where the pipeline is subtle, and what this module does:
//! - **Empty values.** The pipeline first drops `null`, `""`, and maps or lists that become
//!   empty, recursively. Every value read here goes through the same pruning, so an
//!   `errorCode: ""` is absent and does not make `event.outcome` a failure.
//! - **`rename` never overwrites.** A `rename` whose target exists fails (and the pipeline
//!   ignores the failure). So `user.name` is `userIdentity.userName` and only falls back to
//!   `sessionContext.sessionIssuer.userName` when the first is absent; `cloud.account.id` is
//!   `userIdentity.accountId`, else `awsAccountId` (digest records).
//! - **Map strings.** `aws.cloudtrail.request_parameters`, `response_elements`,
//!   `additional_eventdata` and `service_event_details` are the Painless `toString()` of the
//!   parsed JSON: Java `AbstractMap.toString` (`{k=v, k2=v2}`) and `AbstractCollection.toString`
//!   (`[a, b]`), strings unquoted, over `java.util.HashMap`s. Their key order is HashMap
//!   iteration order, which [`java_map_string`] reproduces (bucket order of `String.hashCode`
//!   in a table sized as incremental `put`s size it; insertion order within a bucket). The
//!   parsed objects are also under `aws.cloudtrail.flattened.*` when the string is shorter than
//!   32,766 characters.
//! - **Enrichment.** `source.geo.*`, `source.as.*` (GeoIP and ASN databases) and the parsed
//!   user agent (`user_agent.name`, `.version`, `.os.*`, `.device.*`, from the `user_agent`
//!   processor's regex database) cannot be computed from the record. [`derive`] returns `None`
//!   for them: they are read from the event when an upstream enrichment added them, and are
//!   otherwise absent. A rule testing them on a raw record sees them absent.
//! - **Not CloudTrail.** A value without `eventSource` or `eventName` is not a CloudTrail
//!   record and derives nothing (otherwise every event would get `data_stream.dataset:
//!   aws.cloudtrail`).
//! - **Precedence.** An event that already carries an ECS field is used as it is: the caller
//!   reads the literal field first and asks [`derive`] only when it is absent.
//! - `aws.cloudtrail.session_credential_from_console` is not in the pipeline version read; it
//!   is derived from the raw `sessionCredentialFromConsole`, as newer pipelines do (assumption).
//! - `event.category` / `event.type` come from the pipeline's per-action table ([`CATEGORIES`]):
//!   EQL rules filter on them (`iam where`, and `info where` with `event_category_override =
//!   "event.type"`). Actions outside the table have `event.type: ["info"]` and no category.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::event::Event;
use crate::ir::FieldPath;

/// What Elastic's integration sets `event.dataset` and `data_stream.dataset` to.
pub const DATASET: &str = "aws.cloudtrail";

/// The 32,766-character limit under which the pipeline keeps the `flattened` copy.
const FLATTENED_MAX: usize = 32_766;

/// Direct renames and copies: (ECS field, raw CloudTrail path). Each follows a `rename` or
/// `set` processor of the pipeline of the same pair.
const DIRECT: &[(&str, &str)] = &[
    ("@timestamp", "eventTime"),
    ("event.action", "eventName"),
    ("event.provider", "eventSource"),
    ("event.id", "eventID"),
    ("cloud.region", "awsRegion"),
    ("user.id", "userIdentity.principalId"),
    ("source.address", "sourceIPAddress"),
    ("user_agent.original", "userAgent"),
    ("aws.cloudtrail.event_version", "eventVersion"),
    ("aws.cloudtrail.user_identity.type", "userIdentity.type"),
    ("aws.cloudtrail.user_identity.arn", "userIdentity.arn"),
    (
        "aws.cloudtrail.user_identity.access_key_id",
        "userIdentity.accessKeyId",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
        "userIdentity.sessionContext.attributes.mfaAuthenticated",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.creation_date",
        "userIdentity.sessionContext.attributes.creationDate",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.session_issuer.type",
        "userIdentity.sessionContext.sessionIssuer.type",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id",
        "userIdentity.sessionContext.sessionIssuer.principalId",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
        "userIdentity.sessionContext.sessionIssuer.arn",
    ),
    (
        "aws.cloudtrail.user_identity.session_context.session_issuer.account_id",
        "userIdentity.sessionContext.sessionIssuer.accountId",
    ),
    (
        "aws.cloudtrail.user_identity.invoked_by",
        "userIdentity.invokedBy",
    ),
    ("aws.cloudtrail.event_category", "eventCategory"),
    ("aws.cloudtrail.error_code", "errorCode"),
    ("aws.cloudtrail.error_message", "errorMessage"),
    ("aws.cloudtrail.request_id", "requestID"),
    ("aws.cloudtrail.event_type", "eventType"),
    ("aws.cloudtrail.api_version", "apiVersion"),
    ("aws.cloudtrail.management_event", "managementEvent"),
    ("aws.cloudtrail.read_only", "readOnly"),
    ("aws.cloudtrail.recipient_account_id", "recipientAccountId"),
    ("aws.cloudtrail.shared_event_id", "sharedEventId"),
    ("aws.cloudtrail.vpc_endpoint_id", "vpcEndpointId"),
    (
        "aws.cloudtrail.session_credential_from_console",
        "sessionCredentialFromConsole",
    ),
    // `set` processors reading the flattened request and response (mustache templates).
    ("user.target.name", "requestParameters.userName"),
    ("user.target.id", "responseElements.user.userId"),
    ("user.changes.name", "requestParameters.newUserName"),
    ("group.name", "requestParameters.groupName"),
    ("group.id", "responseElements.group.groupId"),
    ("tls.cipher", "tlsDetails.cipherSuite"),
    (
        "tls.client.server_name",
        "tlsDetails.clientProvidedHostHeader",
    ),
];

/// The raw objects kept as a `toString()` string and a `flattened` copy:
/// (ECS name under `aws.cloudtrail`, raw field).
const MAPS: &[(&str, &str)] = &[
    ("request_parameters", "requestParameters"),
    ("response_elements", "responseElements"),
    ("additional_eventdata", "additionalEventData"),
    ("service_event_details", "serviceEventDetails"),
];

/// The pipeline's "Add ECS categorization" script: `event.type` is `["info"]`, and for these
/// actions `event.category` and `event.type` come from this table (keyed on the action alone).
const CATEGORIES: &[(&str, &str, &[&str])] = &[
    ("AddUserToGroup", "iam", &["group", "change"]),
    ("AssumeRole", "authentication", &["info"]),
    ("AttachGroupPolicy", "iam", &["group", "change"]),
    ("AttachUserPolicy", "iam", &["user", "change"]),
    ("ChangePassword", "iam", &["user", "change"]),
    ("ConsoleLogin", "authentication", &["info"]),
    ("CreateAccessKey", "iam", &["user", "change"]),
    ("CreateBucket", "file", &["creation"]),
    ("CreateGroup", "iam", &["group", "creation"]),
    ("CreateKeyPair", "iam", &["admin", "creation"]),
    ("CreateUser", "iam", &["user", "creation"]),
    ("CreateVirtualMFADevice", "iam", &["user", "change"]),
    ("DeactivateMFADevice", "iam", &["user", "change"]),
    ("DeleteAccessKey", "iam", &["user", "change"]),
    ("DeleteBucket", "file", &["deletion"]),
    ("DeleteGroup", "iam", &["group", "deletion"]),
    ("DeleteGroupPolicy", "iam", &["group", "change"]),
    ("DeleteSSHPublicKey", "iam", &["user", "change"]),
    ("DeleteUser", "iam", &["user", "deletion"]),
    ("DeleteUserPermissionsBoundary", "iam", &["user", "change"]),
    ("DeleteUserPolicy", "iam", &["user", "change"]),
    ("DeleteVirtualMFADevice", "iam", &["user", "change"]),
    ("DetachGroupPolicy", "iam", &["group", "change"]),
    ("DetachUserPolicy", "iam", &["user", "change"]),
    ("EnableMFADevice", "iam", &["user", "change"]),
    ("GetGroup", "iam", &["group", "info"]),
    ("GetGroupPolicy", "iam", &["group", "info"]),
    ("GetUser", "iam", &["user", "info"]),
    ("GetUserPolicy", "iam", &["user", "info"]),
    ("ListAttachedGroupPolicies", "iam", &["group", "info"]),
    ("ListAttachedUserPolicies", "iam", &["user", "info"]),
    ("ListGroupPolicies", "iam", &["group", "info"]),
    ("ListGroups", "iam", &["group", "info"]),
    ("ListGroupsForUser", "iam", &["user", "info"]),
    ("ListUserPolicies", "iam", &["user", "info"]),
    ("ListUsers", "iam", &["user", "info"]),
    ("ListUserTags", "iam", &["user", "info"]),
    ("PutGroupPolicy", "iam", &["group", "change"]),
    ("PutUserPermissionsBoundary", "iam", &["user", "change"]),
    ("PutUserPolicy", "iam", &["user", "change"]),
    ("RemoveUserFromGroup", "iam", &["group", "change"]),
    ("SetDefaultPolicyVersion", "iam", &["admin", "change"]),
    (
        "SetSecurityTokenServicePreferences",
        "iam",
        &["admin", "change"],
    ),
    ("TagUser", "iam", &["user", "change"]),
    ("UntagUser", "iam", &["user", "change"]),
    ("UpdateAccessKey", "iam", &["user", "change"]),
    ("UpdateAccountPasswordPolicy", "iam", &["admin", "change"]),
    ("UpdateGroup", "iam", &["group", "change"]),
    ("UpdateLoginProfile", "iam", &["user", "change"]),
    ("UpdateRole", "iam", &["admin", "change"]),
    ("UpdateSSHPublicKey", "iam", &["user", "change"]),
    ("UpdateUser", "iam", &["user", "change"]),
];

/// Fields computed from several raw fields or constants (see [`derive`]).
const COMPUTED: &[&str] = &[
    "event.outcome",
    "event.kind",
    "event.category",
    "event.type",
    "event.dataset",
    "data_stream.dataset",
    "data_stream.type",
    "cloud.provider",
    "cloud.account.id",
    "user.name",
    "source.ip",
    "tls.version",
    "tls.version_protocol",
    "aws.cloudtrail.console_login.additional_eventdata.mobile_version",
    "aws.cloudtrail.console_login.additional_eventdata.login_to",
    "aws.cloudtrail.console_login.additional_eventdata.mfa_used",
];

/// The raw CloudTrail field an ECS field is a plain copy of (`event.action` → `eventName`),
/// for the fields the pipeline renames or copies unchanged; `None` for computed ones. The rule
/// catalog uses it to see that an Elastic rule and a Sigma or Panther rule test the same thing.
pub fn raw_name(field: &str) -> Option<&'static str> {
    DIRECT
        .iter()
        .find(|(ecs, _)| *ecs == field)
        .map(|(_, raw)| *raw)
}

/// The value [`derive`] gives `field` on every CloudTrail record (`event.dataset` is
/// `aws.cloudtrail`), for the fields that only restate the log source; `None` for the others.
/// The rule catalog ignores conditions on them when it compares rules.
pub fn constant(field: &str) -> Option<&'static str> {
    match field {
        "event.kind" => Some("event"),
        "event.dataset" | "data_stream.dataset" => Some(DATASET),
        "data_stream.type" => Some("logs"),
        "cloud.provider" => Some("aws"),
        _ => None,
    }
}

/// True when [`derive`] can compute `field` from a raw CloudTrail record (for some record).
/// Enrichment fields (`source.geo.*`, `source.as.*`, parsed `user_agent.*`) are not derivable.
pub fn is_derivable(field: &str) -> bool {
    DIRECT.iter().any(|(ecs, _)| *ecs == field)
        || COMPUTED.contains(&field)
        || MAPS.iter().any(|(name, _)| {
            field.strip_prefix("aws.cloudtrail.") == Some(*name)
                || flattened_rest(field, name).is_some()
        })
        || field == "aws.cloudtrail.resources"
        || field.starts_with("aws.cloudtrail.resources.")
}

/// The ECS field `field` as Elastic's AWS integration would have indexed it from this raw
/// CloudTrail record, or `None` when the pipeline would not set it (or it is not derivable).
/// A field with several values (a path through a list) comes back as an array.
pub fn derive(field: &str, event: &Event<'_>) -> Option<Value> {
    if !is_cloudtrail(event) {
        return None;
    }
    if let Some((_, raw_path)) = DIRECT.iter().find(|(ecs, _)| *ecs == field) {
        return raw(event, raw_path);
    }
    match field {
        // The categorization script sets `event.kind` and `event.outcome`: a failure when
        // `error_code` or `error_message` is present, and for `ConsoleLogin` the lower-cased
        // `responseElements.ConsoleLogin` when there is one.
        "event.kind" => return Some(Value::String("event".into())),
        "event.category" | "event.type" => {
            let Some(Value::String(action)) = raw(event, "eventName") else {
                return (field == "event.type").then(|| Value::Array(vec!["info".into()]));
            };
            let entry = CATEGORIES.iter().find(|(name, _, _)| *name == action);
            return match (field, entry) {
                ("event.category", Some((_, category, _))) => {
                    Some(Value::Array(vec![Value::String(category.to_string())]))
                }
                ("event.category", None) => None,
                (_, Some((_, _, types))) => Some(Value::Array(
                    types.iter().map(|t| Value::String(t.to_string())).collect(),
                )),
                (_, None) => Some(Value::Array(vec!["info".into()])),
            };
        }
        "event.outcome" => return Some(Value::String(outcome(event))),
        // Set by the integration's data stream, not by the pipeline.
        "event.dataset" | "data_stream.dataset" => return Some(Value::String(DATASET.into())),
        "data_stream.type" => return Some(Value::String("logs".into())),
        "cloud.provider" => return Some(Value::String("aws".into())),
        // `rename` does not overwrite: `json.awsAccountId` only lands when the identity had
        // no account id.
        "cloud.account.id" => {
            return raw(event, "userIdentity.accountId").or_else(|| raw(event, "awsAccountId"));
        }
        // Same rule: the session issuer's name only when the identity has no `userName`.
        "user.name" => {
            return raw(event, "userIdentity.userName")
                .or_else(|| raw(event, "userIdentity.sessionContext.sessionIssuer.userName"));
        }
        // `grok` with `^%{IP:source.ip}$`: only an address that is an IP in full.
        "source.ip" => {
            return match raw(event, "sourceIPAddress")? {
                Value::String(text) if text.parse::<IpAddr>().is_ok() => Some(Value::String(text)),
                _ => None,
            };
        }
        // `dissect` of `tlsDetails.tlsVersion` with `%{tls.version_protocol}v%{tls.version}`,
        // then `lowercase` of the protocol: `TLSv1.2` gives `tls` and `1.2`.
        "tls.version" | "tls.version_protocol" => {
            let Value::String(text) = raw(event, "tlsDetails.tlsVersion")? else {
                return None;
            };
            let (protocol, version) = text.split_once('v')?;
            return Some(Value::String(if field == "tls.version" {
                version.to_string()
            } else {
                protocol.to_lowercase()
            }));
        }
        _ => {}
    }
    if let Some(rest) = field.strip_prefix("aws.cloudtrail.console_login.additional_eventdata.") {
        return console_login(event, rest);
    }
    if field == "aws.cloudtrail.resources" || field.starts_with("aws.cloudtrail.resources.") {
        return resources(event, field.strip_prefix("aws.cloudtrail.resources"));
    }
    for (name, raw_field) in MAPS {
        if field.strip_prefix("aws.cloudtrail.") == Some(*name) {
            return raw(event, raw_field).map(|value| Value::String(java_map_string(&value)));
        }
        if let Some(rest) = flattened_rest(field, name) {
            let whole = raw(event, raw_field)?;
            if java_map_string(&whole).chars().count() >= FLATTENED_MAX {
                return None;
            }
            return match rest {
                "" => Some(whole),
                rest => collect(&whole, rest),
            };
        }
    }
    None
}

/// The whole ECS document of a raw CloudTrail record: the record itself plus every derivable
/// ECS field, nested. Used by tests and the corpus report to evaluate Elastic rules on raw
/// records without the lazy view; the engine uses [`derive`].
pub fn document(record: &Value) -> Value {
    let event = Event::new(record);
    let mut out = record.clone();
    if !is_cloudtrail(&event) {
        return out;
    }
    let mut fields: Vec<String> = DIRECT.iter().map(|(ecs, _)| ecs.to_string()).collect();
    fields.extend(COMPUTED.iter().map(|field| field.to_string()));
    fields.push("aws.cloudtrail.resources".to_string());
    for (name, _) in MAPS {
        fields.push(format!("aws.cloudtrail.{name}"));
        fields.push(format!("aws.cloudtrail.flattened.{name}"));
    }
    for field in fields {
        if let Some(value) = derive(&field, &event) {
            insert_nested(&mut out, &field, value);
        }
    }
    out
}

fn flattened_rest<'a>(field: &'a str, name: &str) -> Option<&'a str> {
    let rest = field
        .strip_prefix("aws.cloudtrail.flattened.")?
        .strip_prefix(name)?;
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix('.')
    }
}

fn is_cloudtrail(event: &Event<'_>) -> bool {
    // One-segment paths: the top-level keys (`Event::first` would try the same key twice).
    let is_str = |key: &str| matches!(event.get(key), Some(Value::String(_)));
    is_str("eventSource") || is_str("eventName")
}

/// The raw value at `path`, pruned as the pipeline prunes; several values (a path through a
/// list) come back as an array.
fn raw(event: &Event<'_>, path: &'static str) -> Option<Value> {
    thread_local! {
        /// The paths of the raw fields, built once per thread rather than once per read.
        static PATHS: std::cell::RefCell<std::collections::HashMap<&'static str, std::rc::Rc<FieldPath>>> =
            Default::default();
    }
    let path = PATHS.with(|paths| {
        std::rc::Rc::clone(
            paths
                .borrow_mut()
                .entry(path)
                .or_insert_with(|| std::rc::Rc::new(FieldPath::new(path))),
        )
    });
    raw_at(event, &path)
}

/// [`raw`] at any path.
fn raw_at(event: &Event<'_>, path: &FieldPath) -> Option<Value> {
    let mut found = Vec::new();
    event.any_value(path, &mut |value| {
        if let Some(value) = pruned(value) {
            found.push(value);
        }
        false
    });
    match found.len() {
        0 => None,
        1 => found.pop(),
        _ => Some(Value::Array(found)),
    }
}

/// Every value at dotted `path` inside `value`, lists fanning out.
fn collect(value: &Value, path: &str) -> Option<Value> {
    let doc = Value::Object(Map::from_iter([("v".to_string(), value.clone())]));
    let event = Event::new(&doc);
    raw_at(&event, &FieldPath::new(&format!("v.{path}")))
}

/// The pipeline's first script: `null`, `""` and maps or lists left empty are dropped.
fn pruned(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::String(text) if text.is_empty() => None,
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .filter_map(|(key, value)| pruned(value).map(|value| (key.clone(), value)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) => {
            let out: Vec<Value> = items.iter().filter_map(pruned).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        other => Some(other.clone()),
    }
}

fn outcome(event: &Event<'_>) -> String {
    let failed = raw(event, "errorCode").is_some() || raw(event, "errorMessage").is_some();
    let mut outcome = if failed { "failure" } else { "success" }.to_string();
    if matches!(raw(event, "eventName"), Some(Value::String(name)) if name == "ConsoleLogin")
        && let Some(login) = raw(event, "responseElements.ConsoleLogin")
    {
        // `Processors.lowercase` of the value; a non-string would make the script fail, and
        // the outcome set before the failure stays.
        if let Value::String(text) = login {
            outcome = text.to_lowercase();
        }
    }
    outcome
}

/// The `ConsoleLogin`-only script: `MobileVersion` and `MFAUsed` become booleans (`"No"` is
/// false, anything else true), `LoginTo` is copied.
fn console_login(event: &Event<'_>, rest: &str) -> Option<Value> {
    if !matches!(raw(event, "eventName"), Some(Value::String(name)) if name == "ConsoleLogin") {
        return None;
    }
    let (raw_key, boolean) = match rest {
        "mobile_version" => ("MobileVersion", true),
        "mfa_used" => ("MFAUsed", true),
        "login_to" => ("LoginTo", false),
        _ => return None,
    };
    let value = raw_at(
        event,
        &FieldPath::new(&format!("additionalEventData.{raw_key}")),
    )?;
    if !boolean {
        return Some(value);
    }
    Some(Value::Bool(value != Value::String("No".into())))
}

/// `aws.cloudtrail.resources`: the raw list with `ARN` renamed `arn` and `accountId` renamed
/// `account_id` (deduplicated by the three keys in the pipeline; duplicates do not change a
/// match, so they are kept).
fn resources(event: &Event<'_>, rest: Option<&str>) -> Option<Value> {
    let Value::Array(items) = raw(event, "resources")? else {
        return None;
    };
    let renamed: Vec<Value> = items
        .into_iter()
        .filter_map(|item| match item {
            Value::Object(map) => Some(Value::Object(
                map.into_iter()
                    .map(|(key, value)| match key.as_str() {
                        "ARN" => ("arn".to_string(), value),
                        "accountId" => ("account_id".to_string(), value),
                        _ => (key, value),
                    })
                    .collect(),
            )),
            _ => None,
        })
        .collect();
    let whole = Value::Array(renamed);
    match rest {
        None | Some("") => Some(whole),
        Some(rest) => collect(&whole, rest.strip_prefix('.')?),
    }
}

fn insert_nested(target: &mut Value, field: &str, value: Value) {
    let mut current = target;
    let mut parts = field.split('.').peekable();
    while let Some(part) = parts.next() {
        let Value::Object(map) = current else {
            return;
        };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        current = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// Java's `toString()` of the value the ingest `json` processor would have parsed: maps as
/// `java.util.HashMap` (`{k=v, k2=v2}` in HashMap iteration order), lists as `[a, b]`,
/// strings as they are, integers as `Integer`/`Long`, other numbers as `Double`.
pub fn java_map_string(value: &Value) -> String {
    let mut out = String::new();
    write_java(value, &mut out);
    out
}

fn write_java(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::String(text) => out.push_str(text),
        Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => out.push_str(&int.to_string()),
            (None, Some(int)) => out.push_str(&int.to_string()),
            _ => out.push_str(&java_double(number.as_f64().unwrap_or(f64::NAN))),
        },
        Value::Array(items) => {
            out.push('[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push_str(", ");
                }
                write_java(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (idx, (key, value)) in hashmap_order(map).into_iter().enumerate() {
                if idx > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                write_java(value, out);
            }
            out.push('}');
        }
    }
}

/// `Double.toString`: plain decimal with at least one fractional digit in `[1e-3, 1e7)`,
/// computerized scientific notation (`1.0E10`) outside it.
pub(crate) fn java_double(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let magnitude = x.abs();
    if x == 0.0 || (1e-3..1e7).contains(&magnitude) {
        let text = format!("{x}");
        if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        }
    } else {
        let text = format!("{x:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let mantissa = if mantissa.contains('.') {
            mantissa.to_string()
        } else {
            format!("{mantissa}.0")
        };
        format!("{mantissa}E{exponent}")
    }
}

/// The iteration order of a `java.util.HashMap` filled by `put` in `map`'s order (the JSON
/// order): buckets in index order, insertion order within a bucket. The table starts at 16
/// slots and doubles whenever the size exceeds 3/4 of it; a resize keeps the relative order
/// inside each split bucket, so the final order depends only on the final table size.
fn hashmap_order(map: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut capacity = 16_usize;
    while map.len() > capacity / 4 * 3 {
        capacity *= 2;
    }
    let mut keyed: Vec<(usize, usize, &str, &Value)> = map
        .iter()
        .enumerate()
        .map(|(order, (key, value))| {
            let hash = java_string_hash(key);
            let spread = hash ^ (hash >> 16);
            (
                (spread as usize) & (capacity - 1),
                order,
                key.as_str(),
                value,
            )
        })
        .collect();
    keyed.sort_by_key(|(bucket, order, _, _)| (*bucket, *order));
    keyed
        .into_iter()
        .map(|(_, _, key, value)| (key, value))
        .collect()
}

/// `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
fn java_string_hash(text: &str) -> u32 {
    text.encode_utf16().fold(0_u32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(u32::from(unit))
    })
}

#[cfg(test)]
mod tests;

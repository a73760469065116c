//! The Panther helper modules and the standard-library pieces rules use, implemented natively:
//! `panther_base_helpers`, `panther_aws_helpers`, `panther_detection_helpers.caching` (over
//! [`super::KvState`]), the event's own methods, `json`, `re` (through the Rust regex crate),
//! `fnmatch`, `ipaddress` and `datetime`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;

use serde_json::Value as Json;

use super::interp::{Interp, R};
use super::native::{event_get, take_kw};
use super::udm;
use super::value::*;

// ---- name tables ----

pub fn event_type_constant(name: &str) -> Option<&'static str> {
    Some(match name {
        "ADMIN_ROLE_ASSIGNED" => "admin_role_assigned",
        "FAILED_LOGIN" => "failed_login",
        "MFA_DISABLED" => "mfa_disabled",
        "MFA_ENABLED" => "mfa_enabled",
        "MFA_RESET" => "mfa_reset",
        "SUCCESSFUL_LOGIN" => "successful_login",
        "SUCCESSFUL_LOGOUT" => "successful_logout",
        "USER_ACCOUNT_CREATED" => "user_account_created",
        "ACCOUNT_CREATED" => "account_created",
        "USER_ACCOUNT_DELETED" => "user_account_deleted",
        "USER_ACCOUNT_MODIFIED" => "user_account_modified",
        "USER_GROUP_CREATED" => "user_group_created",
        "USER_GROUP_MODIFIED" => "user_group_modified",
        "USER_GROUP_DELETED" => "user_group_deleted",
        "USER_ROLE_CREATED" => "user_role_created",
        "USER_ROLE_MODIFIED" => "user_role_modified",
        "USER_ROLE_DELETED" => "user_role_deleted",
        "ADMIN_MFA_DISABLED" => "admin_mfa_disabled",
        _ => return None,
    })
}

pub fn caching_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "get_string_set" => "caching.get_string_set",
        "put_string_set" => "caching.put_string_set",
        "add_to_string_set" => "caching.add_to_string_set",
        "remove_from_string_set" => "caching.remove_from_string_set",
        "reset_string_set" => "caching.reset_string_set",
        "get_counter" => "caching.get_counter",
        "increment_counter" => "caching.increment_counter",
        "reset_counter" => "caching.reset_counter",
        "set_key_expiration" => "caching.set_key_expiration",
        "check_account_age" => "caching.check_account_age",
        _ => return None,
    })
}

/// The native name of a Panther helper function, or why it is not supported.
pub fn helper_name(module: &str, name: &str) -> Result<&'static str, &'static str> {
    Ok(match (module, name) {
        ("panther_base_helpers", "deep_get") => "base.deep_get",
        ("panther_base_helpers", "deep_walk") => "base.deep_walk",
        ("panther_base_helpers", "pattern_match") => "base.pattern_match",
        ("panther_base_helpers", "pattern_match_list") => "base.pattern_match_list",
        ("panther_base_helpers", "is_ip_in_network") => "base.is_ip_in_network",
        ("panther_base_helpers", "get_val_from_list") => "base.get_val_from_list",
        ("panther_base_helpers", "severity_greater_than") => "base.severity_greater_than",
        ("panther_base_helpers", "pantherflow_investigation") => "base.pantherflow_investigation",
        ("panther_base_helpers", "key_value_list_to_dict") => "base.key_value_list_to_dict",
        ("panther_base_helpers", "listify") => "base.listify",
        ("panther_base_helpers", "resolve_timestamp_string") => "base.resolve_timestamp_string",
        ("panther_base_helpers", "add_parse_delay") => "base.add_parse_delay",
        ("panther_aws_helpers", "aws_cloudtrail_success") => "aws.aws_cloudtrail_success",
        ("panther_aws_helpers", "aws_rule_context") => "aws.aws_rule_context",
        ("panther_aws_helpers", "aws_rds_context") => "aws.aws_rds_context",
        ("panther_aws_helpers", "aws_regions") => "aws.aws_regions",
        ("panther_aws_helpers", "aws_strip_role_session_id") => "aws.aws_strip_role_session_id",
        ("panther_aws_helpers", "aws_event_tense") => "aws.aws_event_tense",
        ("panther_aws_helpers", "lookup_aws_account_name") => "aws.lookup_aws_account_name",
        ("panther_aws_helpers", "get_actor_user") => "aws.get_actor_user",
        ("panther_aws_helpers", "get_s3_arn_by_name") => "aws.get_s3_arn_by_name",
        ("panther_ipinfo_helpers", "PantherIPInfoException") => "PantherIPInfoException",
        ("panther_ipinfo_helpers", "geoinfo_from_ip") => "ipinfo.geoinfo_from_ip",
        ("panther_ipinfo_helpers", "geoinfo_from_ip_formatted") => {
            "ipinfo.geoinfo_from_ip_formatted"
        }
        ("panther_ipinfo_helpers", "get_ipinfo_asn") => "ipinfo.get_ipinfo_asn",
        ("panther_ipinfo_helpers", "get_ipinfo_location") => "ipinfo.get_ipinfo_location",
        ("panther_ipinfo_helpers", "get_ipinfo_privacy") => "ipinfo.get_ipinfo_privacy",
        ("panther_ipinfo_helpers", _) => return Err(" (needs IPinfo enrichment)"),
        _ => return Err(""),
    })
}

// ---- argument helpers ----

fn arg(it: &Interp, args: &[Val], i: usize, f: &str) -> R<Val> {
    args.get(i).cloned().ok_or_else(|| {
        it.type_error(format!(
            "{f}() missing required positional argument {}",
            i + 1
        ))
    })
}

fn str_of<'v>(it: &Interp, v: &'v Val, f: &str) -> R<&'v Rc<str>> {
    match v {
        Val::Str(s) => Ok(s),
        other => Err(it.type_error(format!("{f}(): expected str, got {}", type_name(other)))),
    }
}

fn is_mapping(v: &Val) -> bool {
    matches!(v, Val::Dict(_) | Val::Event)
}

/// `mapping.get(key, default)` for a dict or the event.
fn mapping_get(it: &Interp, m: &Val, key: &Val, default: &Val) -> R<Val> {
    match m {
        Val::Dict(d) => Ok(d
            .borrow()
            .get(key)
            .map_err(|e| it.hkey_err(e))?
            .cloned()
            .unwrap_or_else(|| default.clone())),
        Val::Event => Ok(match key {
            Val::Str(k) => event_get(it, k).unwrap_or_else(|| default.clone()),
            _ => default.clone(),
        }),
        _ => Ok(default.clone()),
    }
}

/// Panther's `deep_get`: walks mappings; a missing key or a non-mapping yields the default,
/// and a final None is replaced by the default.
pub fn deep_get(it: &Interp, obj: &Val, keys: &[Val], default: &Val) -> R<Val> {
    // From the event, the JSON is walked as it is and only the value at the end is converted:
    // the same answer as converting each step (a JSON object converts to a dict with the same
    // keys), without building the objects on the way.
    if let (Val::Event, [Val::Str(first), rest @ ..]) = (obj, keys)
        && rest.iter().all(|k| matches!(k, Val::Str(_)))
    {
        let Some(mut cur) = super::native::event_lookup(it.event, first) else {
            return deep_get_from(it, default.clone(), rest, default);
        };
        for (i, k) in rest.iter().enumerate() {
            let next = match (cur, k) {
                (Json::Object(map), Val::Str(k)) => super::native::object_lookup(map, k),
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                // A missing key or a non-mapping gives the default, and the walk goes on in it.
                None => return deep_get_from(it, default.clone(), &rest[i + 1..], default),
            }
        }
        // Charged as `event.get` charges what it converts.
        let _ = it.charge(super::native::json_nodes(cur, 0));
        return deep_get_from(it, from_json(cur), &[], default);
    }
    deep_get_from(it, obj.clone(), keys, default)
}

/// [`deep_get`] from the value `out`, already reached.
fn deep_get_from(it: &Interp, mut out: Val, keys: &[Val], default: &Val) -> R<Val> {
    for k in keys {
        out = if is_mapping(&out) {
            mapping_get(it, &out, k, default)?
        } else {
            default.clone()
        };
    }
    Ok(if matches!(out, Val::None) {
        default.clone()
    } else {
        out
    })
}

fn is_sequence(v: &Val) -> bool {
    matches!(v, Val::List(_) | Val::Tuple(_))
}

fn empty_list(it: &mut Interp, v: &Val) -> R<bool> {
    if !is_sequence(v) {
        return Ok(false);
    }
    for x in it.iterate(v)? {
        if !empty_list(it, &x)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Panther's `deep_walk` (the event method's version when `event_method` is set: a missing key
/// yields the default and the walk goes on with it).
pub fn deep_walk(
    it: &mut Interp,
    obj: &Val,
    keys: &[Val],
    default: &Val,
    return_val: &Val,
    event_method: bool,
) -> R<Val> {
    it.step()?;
    let Some((current, rest)) = keys.split_first() else {
        let none = matches!(obj, Val::None);
        return Ok(if empty_list(it, obj)? || (event_method && none) {
            default.clone()
        } else {
            obj.clone()
        });
    };
    if is_mapping(obj) {
        if event_method {
            let next = mapping_get(it, obj, current, default)?;
            return deep_walk(it, &next, rest, default, return_val, event_method);
        }
        let next = mapping_get(it, obj, current, &Val::None)?;
        if matches!(next, Val::None) {
            return Ok(default.clone());
        }
        return deep_walk(it, &next, rest, default, return_val, event_method);
    }
    let mut found = Dict::default();
    if is_sequence(obj) {
        for item in it.iterate(obj)? {
            let value = deep_walk(it, &item, keys, default, return_val, event_method)?;
            if matches!(value, Val::None) {
                continue;
            }
            if is_sequence(&value) {
                for sub in it.iterate(&value)? {
                    found.insert(sub, Val::None).map_err(|e| it.hkey_err(e))?;
                }
            } else {
                found.insert(value, Val::None).map_err(|e| it.hkey_err(e))?;
            }
        }
    }
    let list = found.keys;
    if list.is_empty() {
        return Ok(default.clone());
    }
    Ok(match return_val {
        Val::Str(s) if &**s == "first" => list[0].clone(),
        Val::Str(s) if &**s == "last" => list[list.len() - 1].clone(),
        Val::Str(s) if &**s == "all" => {
            if list.len() == 1 {
                list[0].clone()
            } else {
                new_list(list)
            }
        }
        _ => new_str("all"),
    })
}

fn walk_args(it: &Interp, mut kwargs: Vec<(String, Val)>, f: &str) -> R<(Val, Val)> {
    let default = take_kw(&mut kwargs, "default").unwrap_or(Val::None);
    let return_val = take_kw(&mut kwargs, "return_val").unwrap_or_else(|| new_str("all"));
    if let Some((k, _)) = kwargs.first() {
        return Err(it.type_error(format!("{f}() got an unexpected keyword argument '{k}'")));
    }
    Ok((default, return_val))
}

fn only_default(it: &Interp, mut kwargs: Vec<(String, Val)>, f: &str) -> R<Val> {
    let default = take_kw(&mut kwargs, "default").unwrap_or(Val::None);
    if let Some((k, _)) = kwargs.first() {
        return Err(it.type_error(format!("{f}() got an unexpected keyword argument '{k}'")));
    }
    Ok(default)
}

// ---- the event ----

pub fn event_method(
    it: &mut Interp,
    name: &str,
    args: Vec<Val>,
    kwargs: Vec<(String, Val)>,
) -> R<Val> {
    match name {
        "get" => {
            let default = match (args.get(1), kwargs.iter().find(|(k, _)| k == "default")) {
                (Some(d), _) => d.clone(),
                (None, Some((_, d))) => d.clone(),
                _ => Val::None,
            };
            let key = arg(it, &args, 0, "get")?;
            mapping_get(it, &Val::Event, &key, &default)
        }
        "deep_get" => {
            let default = only_default(it, kwargs, "deep_get")?;
            deep_get(it, &Val::Event, &args, &default)
        }
        "deep_walk" => {
            let (default, return_val) = walk_args(it, kwargs, "deep_walk")?;
            deep_walk(it, &Val::Event, &args, &default, &return_val, true)
        }
        "udm" => {
            let default = only_default(it, kwargs, "udm")?;
            udm::udm(it, &args, &default)
        }
        "udm_path" => {
            let key = arg(it, &args, 0, "udm_path")?;
            udm::udm_path(it, &key)
        }
        "keys" | "values" | "items" | "copy" | "to_dict" => {
            let items = it.mapping_items(&Val::Event)?;
            Ok(match name {
                "keys" => new_list(items.into_iter().map(|(k, _)| k).collect()),
                "values" => new_list(items.into_iter().map(|(_, v)| v).collect()),
                "items" => new_list(
                    items
                        .into_iter()
                        .map(|(k, v)| Val::Tuple(Rc::new(vec![k, v])))
                        .collect(),
                ),
                _ => {
                    let mut d = Dict::default();
                    for (k, v) in items {
                        d.insert(k, v).map_err(|e| it.hkey_err(e))?;
                    }
                    new_dict(d)
                }
            })
        }
        _ => Err(it.exc(
            "AttributeError",
            format!("'PantherEvent' object has no attribute '{name}'"),
        )),
    }
}

// ---- native functions ----

pub fn call(
    it: &mut Interp,
    name: &'static str,
    mut args: Vec<Val>,
    mut kwargs: Vec<(String, Val)>,
) -> R<Val> {
    let params = helper_params(name);
    if !kwargs.is_empty() && !params.is_empty() {
        for (i, p) in params.iter().enumerate().skip(args.len()) {
            match take_kw(&mut kwargs, p) {
                Some(v) if args.len() == i => args.push(v),
                Some(_) => {
                    return Err(it.type_error(format!(
                        "{name}() missing positional argument {}",
                        args.len() + 1
                    )));
                }
                None => break,
            }
        }
        if let Some((k, _)) = kwargs.first() {
            return Err(it.type_error(format!("{name}() got an unexpected keyword argument '{k}'")));
        }
    }
    match name {
        "base.deep_get" => {
            let default = only_default(it, kwargs, "deep_get")?;
            let obj = arg(it, &args, 0, "deep_get")?;
            deep_get(it, &obj, &args[1..], &default)
        }
        "base.deep_walk" => {
            let (default, return_val) = walk_args(it, kwargs, "deep_walk")?;
            let obj = arg(it, &args, 0, "deep_walk")?;
            deep_walk(it, &obj, &args[1..], &default, &return_val, false)
        }
        "base.pattern_match" | "fnmatch.fnmatch" | "fnmatch.fnmatchcase" => {
            let s = arg(it, &args, 0, "fnmatch")?;
            let p = arg(it, &args, 1, "fnmatch")?;
            Ok(Val::Bool(fnmatch(it, &s, &p)?))
        }
        "base.pattern_match_list" => {
            let s = arg(it, &args, 0, "pattern_match_list")?;
            let ps = arg(it, &args, 1, "pattern_match_list")?;
            for p in it.iterate(&ps)? {
                if fnmatch(it, &s, &p)? {
                    return Ok(Val::Bool(true));
                }
            }
            Ok(Val::Bool(false))
        }
        "base.is_ip_in_network" => {
            let ip = arg(it, &args, 0, "is_ip_in_network")?;
            let nets = arg(it, &args, 1, "is_ip_in_network")?;
            let ip = ip_address(it, &ip)?;
            for n in it.iterate(&nets)? {
                let net = ip_network(it, &n, true)?;
                if it.contains(&net, &ip)? {
                    return Ok(Val::Bool(true));
                }
            }
            Ok(Val::Bool(false))
        }
        "base.get_val_from_list" => {
            let list = arg(it, &args, 0, "get_val_from_list")?;
            let ret = arg(it, &args, 1, "get_val_from_list")?;
            let cmp_key = arg(it, &args, 2, "get_val_from_list")?;
            let cmp_val = arg(it, &args, 3, "get_val_from_list")?;
            let mut out = Dict::default();
            for item in it.iterate(&list)? {
                let m = super::native::call_method(
                    it,
                    &item,
                    "get",
                    vec![cmp_key.clone()],
                    Vec::new(),
                )?;
                if it.equal(&m, &cmp_val) {
                    let v = super::native::call_method(
                        it,
                        &item,
                        "get",
                        vec![ret.clone()],
                        Vec::new(),
                    )?;
                    out.insert(v, Val::None).map_err(|e| it.hkey_err(e))?;
                }
            }
            Ok(new_set(out))
        }
        "base.severity_greater_than" => {
            let rank = |v: &Val| match v {
                Val::Str(s) => match &**s {
                    "INFO" => 0,
                    "LOW" => 1,
                    "MEDIUM" => 2,
                    "HIGH" => 3,
                    "CRITICAL" => 4,
                    _ => -1,
                },
                _ => -1,
            };
            let a = arg(it, &args, 0, "severity_greater_than")?;
            let b = arg(it, &args, 1, "severity_greater_than")?;
            Ok(Val::Bool(rank(&a) > rank(&b)))
        }
        "base.key_value_list_to_dict" => {
            let list = arg(it, &args, 0, "key_value_list_to_dict")?;
            let k = arg(it, &args, 1, "key_value_list_to_dict")?;
            let v = arg(it, &args, 2, "key_value_list_to_dict")?;
            let mut d = Dict::default();
            for item in it.iterate(&list)? {
                let key = it.subscript(&item, &k)?;
                let val = it.subscript(&item, &v)?;
                d.insert(key, val).map_err(|e| it.hkey_err(e))?;
            }
            Ok(new_dict(d))
        }
        "base.listify" => {
            let v = arg(it, &args, 0, "listify")?;
            Ok(match v {
                Val::Str(_) | Val::Dict(_) => new_list(vec![v]),
                other => other,
            })
        }
        "base.pantherflow_investigation" => {
            let event = arg(it, &args, 0, "pantherflow_investigation")?;
            let interval = match args
                .get(1)
                .cloned()
                .or_else(|| take_kw(&mut kwargs, "interval"))
            {
                Some(v) => v,
                None => new_str("30m"),
            };
            pantherflow_investigation(it, &event, &interval)
        }
        "base.resolve_timestamp_string" => {
            let ts = arg(it, &args, 0, "resolve_timestamp_string")?;
            resolve_timestamp_string(it, &ts)
        }
        "base.add_parse_delay" => {
            let e = arg(it, &args, 0, "add_parse_delay")?;
            let ctx = arg(it, &args, 1, "add_parse_delay")?;
            let t1 = mapping_get(it, &e, &new_str("p_event_time"), &Val::None)?;
            let t2 = mapping_get(it, &e, &new_str("p_parse_time"), &Val::None)?;
            let delay = time_delta(it, &t1, &t2)?;
            match &ctx {
                Val::Dict(d) => d
                    .borrow_mut()
                    .insert(new_str("parseDelay"), new_str(delay))
                    .map_err(|e| it.hkey_err(e))?,
                other => {
                    return Err(it.type_error(format!(
                        "'{}' object does not support item assignment",
                        type_name(other)
                    )));
                }
            }
            Ok(ctx)
        }
        "aws.aws_cloudtrail_success" => {
            let e = arg(it, &args, 0, "aws_cloudtrail_success")?;
            let code = mapping_get(it, &e, &new_str("errorCode"), &new_str(""))?;
            if it.truth(&code)? {
                return Ok(Val::Bool(false));
            }
            let msg = mapping_get(it, &e, &new_str("errorMessage"), &new_str(""))?;
            Ok(Val::Bool(!it.truth(&msg)?))
        }
        "aws.aws_rule_context" => {
            let e = arg(it, &args, 0, "aws_rule_context")?;
            aws_rule_context(it, &e)
        }
        "aws.aws_rds_context" => {
            let e = arg(it, &args, 0, "aws_rds_context")?;
            let ctx = aws_rule_context(it, &e)?;
            let get = |it: &mut Interp, a: &str, b: &str, default: Val| -> R<Val> {
                deep_get(it, &e, &[new_str(a), new_str(b)], &default)
            };
            let mut db = get(it, "requestParameters", "dBInstanceIdentifier", Val::None)?;
            if !it.truth(&db)? {
                db = get(
                    it,
                    "requestParameters",
                    "dBClusterIdentifier",
                    new_str("N/A"),
                )?;
            }
            let mut arn = get(it, "responseElements", "dBInstanceArn", Val::None)?;
            if !it.truth(&arn)? {
                arn = get(it, "responseElements", "dBClusterArn", new_str("N/A"))?;
            }
            if let Val::Dict(d) = &ctx {
                let mut d = d.borrow_mut();
                d.insert(new_str("db_identifier"), db)
                    .map_err(|e| it.hkey_err(e))?;
                d.insert(new_str("db_instance_arn"), arn)
                    .map_err(|e| it.hkey_err(e))?;
            }
            Ok(ctx)
        }
        "logging.log" => Ok(Val::None),
        "ipinfo.get_ipinfo_asn" | "ipinfo.get_ipinfo_location" | "ipinfo.get_ipinfo_privacy" => {
            let e = arg(it, &args, 0, name)?;
            let (kind, table) = match name {
                "ipinfo.get_ipinfo_asn" => ("IPInfoASN", "ipinfo_asn"),
                "ipinfo.get_ipinfo_location" => ("IPInfoLocation", "ipinfo_location"),
                _ => ("IPInfoPrivacy", "ipinfo_privacy"),
            };
            let lut = dg_path(it, &e, &["p_enrichment", table])?;
            if !it.truth(&lut)? {
                return Ok(Val::None);
            }
            Ok(Val::Lut(kind, Rc::new(lut)))
        }
        "ipinfo.geoinfo_from_ip" | "ipinfo.geoinfo_from_ip_formatted" => {
            let e = arg(it, &args, 0, name)?;
            let field = arg(it, &args, 1, name)?;
            let geo = geoinfo_from_ip(it, &e, &field)?;
            if name == "ipinfo.geoinfo_from_ip" {
                return Ok(geo);
            }
            let g = |it: &mut Interp, k: &str| -> R<String> {
                let v = mapping_get(it, &geo, &new_str(k), &Val::None)?;
                Ok(it.to_str(&v))
            };
            let text = format!(
                "{} in {}, {} in {}",
                g(it, "ip")?,
                g(it, "city")?,
                g(it, "region")?,
                g(it, "country")?
            );
            it.mk_str(text)
        }
        "aws.aws_regions" => Ok(new_list(AWS_REGIONS.iter().map(|r| new_str(*r)).collect())),
        "aws.aws_strip_role_session_id" => {
            let arn = arg(it, &args, 0, "aws_strip_role_session_id")?;
            let s = str_of(it, &arn, "aws_strip_role_session_id")?;
            let parts: Vec<&str> = s.split('/').collect();
            Ok(new_str(parts[..parts.len().min(2)].join("/")))
        }
        "aws.aws_event_tense" => {
            let name = arg(it, &args, 0, "aws_event_tense")?;
            let s = str_of(it, &name, "aws_event_tense")?;
            for (prefix, tensed) in [
                ("Create", "created"),
                ("Delete", "deleted"),
                ("Start", "started"),
                ("Stop", "stopped"),
                ("Update", "updated"),
            ] {
                if s.starts_with(prefix) {
                    return Ok(new_str(tensed));
                }
            }
            Ok(name)
        }
        "aws.lookup_aws_account_name" => arg(it, &args, 0, "lookup_aws_account_name"),
        "aws.get_actor_user" => {
            let e = arg(it, &args, 0, "get_actor_user")?;
            udm::get_actor_user(it, &e)
        }
        "aws.get_s3_arn_by_name" => {
            let n = arg(it, &args, 0, "get_s3_arn_by_name")?;
            let s = str_of(it, &n, "get_s3_arn_by_name")?;
            if s.is_empty() {
                return Err(it.exc("PantherBadInput", "s3 name cannot be blank"));
            }
            Ok(new_str(format!("arn:aws:s3:::{s}")))
        }
        "json.loads" => {
            let s = arg(it, &args, 0, "loads")?;
            let s = str_of(it, &s, "loads")?;
            it.charge(s.len())?;
            match serde_json::from_str::<Loaded>(s) {
                Ok(v) => Ok(v.0),
                Err(e) if e.to_string().starts_with("unsupported:") => Err(it.fatal(e.to_string())),
                Err(e) => Err(it.exc("JSONDecodeError", e.to_string())),
            }
        }
        "json.dumps" => {
            let v = arg(it, &args, 0, "dumps")?;
            let sort_keys = match take_kw(&mut kwargs, "sort_keys") {
                Some(v) => it.truth(&v)?,
                None => false,
            };
            let indent = match take_kw(&mut kwargs, "indent") {
                None | Some(Val::None) => None,
                Some(Val::Int(n)) => Some(n.clamp(0, 16) as usize),
                Some(_) => {
                    return Err(it.fatal("unsupported: json.dumps indent that is not an int"));
                }
            };
            let default_str = match take_kw(&mut kwargs, "default") {
                None | Some(Val::None) => false,
                Some(Val::Native("str")) => true,
                Some(_) => return Err(it.fatal("unsupported: json.dumps default= other than str")),
            };
            if let Some((k, _)) = kwargs.first() {
                return Err(it.fatal(format!("unsupported: json.dumps argument {k}")));
            }
            let mut out = String::new();
            dumps(it, &v, sort_keys, indent, default_str, 0, &mut out)?;
            it.mk_str(out)
        }
        "re.compile" => {
            let p = arg(it, &args, 0, "compile")?;
            let flags = flags_arg(it, &args, 1, &mut kwargs)?;
            let p = str_of(it, &p, "compile")?.clone();
            compile(it, &p, flags, Anchor::None)?;
            Ok(Val::Regex(p, flags))
        }
        "re.search" | "re.match" | "re.fullmatch" | "re.findall" | "re.sub" | "re.split" => {
            let p = arg(it, &args, 0, name)?;
            let (p, compiled_flags) = match &p {
                Val::Regex(p, f) => (p.clone(), *f),
                other => (str_of(it, other, name)?.clone(), 0),
            };
            let method = &name[3..];
            let (flag_at, rest) = match method {
                "sub" => (4, &args[1..args.len().min(4)]),
                "split" => (3, &args[1..args.len().min(3)]),
                _ => (2, &args[1..args.len().min(2)]),
            };
            let flags = flags_arg(it, &args, flag_at, &mut kwargs)? | compiled_flags;
            regex_call(it, &p, flags, method, rest.to_vec(), kwargs)
        }
        "re.escape" => {
            let s = arg(it, &args, 0, "escape")?;
            let s = str_of(it, &s, "escape")?;
            let mut out = String::new();
            for c in s.chars() {
                if !(c.is_alphanumeric() || c == '_') && (c as u32) < 128 {
                    out.push('\\');
                }
                out.push(c);
            }
            Ok(new_str(out))
        }
        "ipaddress.ip_address" | "ipaddress.IPv4Address" | "ipaddress.IPv6Address" => {
            let v = arg(it, &args, 0, name)?;
            let ip = ip_address(it, &v)?;
            match (name, &ip) {
                ("ipaddress.IPv4Address", Val::Ip(IpAddr::V6(_)))
                | ("ipaddress.IPv6Address", Val::Ip(IpAddr::V4(_))) => Err(it.exc(
                    "AddressValueError",
                    format!(
                        "{} does not appear to be an address of this version",
                        py_repr(&v)
                    ),
                )),
                _ => Ok(ip),
            }
        }
        "ipaddress.ip_network" | "ipaddress.IPv4Network" | "ipaddress.IPv6Network" => {
            let v = arg(it, &args, 0, name)?;
            let strict = match args
                .get(1)
                .cloned()
                .or_else(|| take_kw(&mut kwargs, "strict"))
            {
                Some(s) => it.truth(&s)?,
                None => true,
            };
            ip_network(it, &v, strict)
        }
        "datetime.timedelta" => timedelta(it, &args, kwargs),
        "caching.get_string_set"
        | "caching.put_string_set"
        | "caching.add_to_string_set"
        | "caching.remove_from_string_set"
        | "caching.reset_string_set"
        | "caching.get_counter"
        | "caching.increment_counter"
        | "caching.reset_counter"
        | "caching.set_key_expiration"
        | "caching.check_account_age" => caching(it, name, args, kwargs),
        "str.lower" | "str.upper" => {
            let s = arg(it, &args, 0, name)?;
            super::native::call_method(it, &s, &name[4..], Vec::new(), Vec::new())
        }
        "typing" | "Mapping" | "Sequence" | "Iterable" | "MagicMock" | "PantherEvent"
        | "datetime.datetime" | "datetime.timezone" => {
            Err(it.fatal(format!("unsupported: calling {name}")))
        }
        _ => Err(it.fatal(format!("unsupported: function {name}"))),
    }
}

/// `panther_base_helpers.nano_to_micro`: the seconds after the last `:` reformatted with
/// `"{:06f}"`.
fn nano_to_micro(it: &Interp, t: &Val) -> R<Val> {
    let Val::Str(s) = t else {
        return Err(it.exc(
            "AttributeError",
            format!("'{}' object has no attribute 'split'", type_name(t)),
        ));
    };
    let mut parts: Vec<String> = s.split(':').map(str::to_string).collect();
    let last = parts.last().cloned().unwrap_or_default();
    let f: f64 = last.trim().replace('_', "").parse().map_err(|_| {
        it.exc(
            "ValueError",
            format!("could not convert string to float: {}", str_repr(&last)),
        )
    })?;
    let text = format!("{f:06.6}");
    if let Some(slot) = parts.last_mut() {
        *slot = text;
    }
    Ok(new_str(parts.join(":")))
}

/// `panther_base_helpers.time_delta`: the later time minus the earlier, in words.
fn time_delta(it: &Interp, t1: &Val, t2: &Val) -> R<String> {
    let a = resolve_timestamp_string(it, &nano_to_micro(it, t1)?)?;
    let b = resolve_timestamp_string(it, &nano_to_micro(it, t2)?)?;
    let (Val::DateTime(x, o), Val::DateTime(y, p)) = (&a, &b) else {
        return Err(
            it.type_error("unsupported operand type(s) for -: a timestamp that did not resolve")
        );
    };
    if o.is_some() != p.is_some() {
        return Err(it.type_error("can't subtract offset-naive and offset-aware datetimes"));
    }
    let us = y - x;
    let days = us.div_euclid(86_400_000_000);
    let secs = us.rem_euclid(86_400_000_000) / 1_000_000;
    let (hours, rem) = (secs / 3600, secs % 3600);
    let (minutes, seconds) = (rem / 60, rem % 60);
    let mut delta = String::new();
    if days > 0 {
        delta = format!("{days} day(s) ");
    }
    if hours > 0 {
        delta.push_str(&format!("{hours} hour(s) "));
    }
    if minutes > 0 {
        delta.push_str(&format!("{minutes} minute(s) "));
    }
    if seconds > 0 {
        delta.push_str(&format!("{seconds} second(s)"));
    }
    Ok(delta)
}

/// Parameter names of the native helpers, so that keyword arguments bind as in Python.
fn helper_params(name: &str) -> &'static [&'static str] {
    match name {
        "ipinfo.geoinfo_from_ip" | "ipinfo.geoinfo_from_ip_formatted" => &["event", "match_field"],
        "ipinfo.get_ipinfo_asn" | "ipinfo.get_ipinfo_location" | "ipinfo.get_ipinfo_privacy" => {
            &["event"]
        }
        "aws.aws_cloudtrail_success"
        | "aws.aws_rule_context"
        | "aws.aws_rds_context"
        | "aws.get_actor_user" => &["event"],
        "base.add_parse_delay" => &["event", "context"],
        "base.pattern_match" => &["string_to_match", "pattern"],
        "base.pattern_match_list" => &["string_to_match", "patterns"],
        "base.is_ip_in_network" => &["ip_addr", "networks"],
        "base.resolve_timestamp_string" => &["timestamp"],
        "fnmatch.fnmatch" | "fnmatch.fnmatchcase" => &["name", "pat"],
        "json.loads" => &["s"],
        _ => &[],
    }
}

fn dg_path(it: &Interp, e: &Val, keys: &[&str]) -> R<Val> {
    let keys: Vec<Val> = keys.iter().map(|k| new_str(*k)).collect();
    deep_get(it, e, &keys, &Val::None)
}

/// `LookupTableMatches._lookup`: the enrichment matched for `field`, then `keys` inside it
/// (element-wise when several matched).
fn lut_field(it: &mut Interp, lut: &Val, field: &Val, key: &str) -> R<Val> {
    let m = deep_get(it, lut, std::slice::from_ref(field), &Val::None)?;
    if !it.truth(&m)? {
        return Ok(Val::None);
    }
    let k = [new_str(key)];
    if is_sequence(&m) {
        let mut out = Vec::new();
        for v in it.iterate(&m)? {
            out.push(if it.truth(&v)? {
                deep_get(it, &v, &k, &Val::None)?
            } else {
                Val::None
            });
        }
        return Ok(new_list(out));
    }
    deep_get(it, &m, &k, &Val::None)
}

fn lut_lookup(it: &mut Interp, kind: &str, lut: &Val, method: &str, args: &[Val]) -> R<Val> {
    let key = match (kind, method) {
        ("IPInfoASN", "asn" | "domain" | "name" | "route" | "type") => method,
        (
            "IPInfoLocation",
            "city" | "country" | "postal_code" | "region" | "region_code" | "timezone",
        ) => method,
        ("IPInfoLocation", "latitude") => "lat",
        ("IPInfoLocation", "longitude") => "lng",
        ("IPInfoPrivacy", "hosting" | "proxy" | "tor" | "vpn" | "relay" | "service") => method,
        _ => return Err(it.fatal(format!("unsupported: {kind}.{method}"))),
    };
    let field = arg(it, args, 0, method)?;
    lut_field(it, lut, &field, key)
}

/// `panther_ipinfo_helpers.geoinfo_from_ip`: from the event's own IPinfo enrichment; without
/// it, Panther's helper raises `PantherIPInfoException`, and so does this one.
fn geoinfo_from_ip(it: &mut Interp, e: &Val, field: &Val) -> R<Val> {
    let loc = dg_path(it, e, &["p_enrichment", "ipinfo_location"])?;
    let asn = dg_path(it, e, &["p_enrichment", "ipinfo_asn"])?;
    if !it.truth(&loc)? || !it.truth(&asn)? {
        return Err(it.exc(
            "PantherIPInfoException",
            "Please enable both IPInfo Location and ASN Enrichment Providers",
        ));
    }
    let f = std::slice::from_ref(field);
    if matches!(deep_get(it, &asn, f, &Val::None)?, Val::None)
        || matches!(deep_get(it, &loc, f, &Val::None)?, Val::None)
    {
        return Err(it.exc(
            "PantherIPInfoException",
            format!(
                "IPInfo is not configured on the provided match_field: {}",
                it.to_str(field)
            ),
        ));
    }
    let ip = mapping_get(it, e, field, &Val::None)?;
    let mut d = Dict::default();
    let mut put =
        |it: &Interp, k: &str, v: Val| d.insert(new_str(k), v).map_err(|e| it.hkey_err(e));
    put(it, "ip", ip)?;
    let city = lut_field(it, &loc, field, "city")?;
    put(it, "city", city)?;
    let region = lut_field(it, &loc, field, "region")?;
    put(it, "region", region)?;
    let country = lut_field(it, &loc, field, "country")?;
    put(it, "country", country)?;
    let lat = lut_field(it, &loc, field, "lat")?;
    let lng = lut_field(it, &loc, field, "lng")?;
    put(
        it,
        "loc",
        new_str(format!("{},{}", it.to_str(&lat), it.to_str(&lng))),
    )?;
    let a = lut_field(it, &asn, field, "asn")?;
    let n = lut_field(it, &asn, field, "name")?;
    put(
        it,
        "org",
        new_str(format!("{} {}", it.to_str(&a), it.to_str(&n))),
    )?;
    let postal = lut_field(it, &loc, field, "postal_code")?;
    put(it, "postal", postal)?;
    let tz = lut_field(it, &loc, field, "timezone")?;
    put(it, "timezone", tz)?;
    Ok(new_dict(d))
}

const AWS_REGIONS: &[&str] = &[
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ca-central-1",
    "ca-central-1",
    "eu-central-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-2",
    "eu-west-3",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// A value parsed by `json.loads`: objects keep their keys in document order, as Python's
/// dicts do (serde_json's own map would sort them).
struct Loaded(Val);

impl<'de> serde::Deserialize<'de> for Loaded {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Loaded, D::Error> {
        d.deserialize_any(LoadedVisitor)
    }
}

struct LoadedVisitor;

impl<'de> serde::de::Visitor<'de> for LoadedVisitor {
    type Value = Loaded;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Loaded, E> {
        Ok(Loaded(Val::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Loaded, E> {
        Ok(Loaded(Val::Int(v)))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Loaded, E> {
        i64::try_from(v)
            .map(|i| Loaded(Val::Int(i)))
            .map_err(|_| E::custom("unsupported: json.loads of an integer beyond 64 bits"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Loaded, E> {
        Ok(Loaded(Val::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Loaded, E> {
        Ok(Loaded(new_str(v)))
    }
    fn visit_unit<E>(self) -> Result<Loaded, E> {
        Ok(Loaded(Val::None))
    }
    fn visit_none<E>(self) -> Result<Loaded, E> {
        Ok(Loaded(Val::None))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Loaded, A::Error> {
        let mut items = Vec::new();
        while let Some(Loaded(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Loaded(new_list(items)))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Loaded, A::Error> {
        let mut d = Dict::default();
        while let Some((k, Loaded(v))) = map.next_entry::<String, Loaded>()? {
            // A string key is always hashable; a repeated key keeps its first place and takes
            // the last value, as in Python.
            let _ = d.insert(new_str(k), v);
        }
        Ok(Loaded(new_dict(d)))
    }
}

fn aws_rule_context(it: &mut Interp, e: &Val) -> R<Val> {
    let mut d = Dict::default();
    for (key, default) in [
        ("eventName", "<MISSING_EVENT_NAME>"),
        ("eventSource", "<MISSING_ACCOUNT_ID>"),
        ("awsRegion", "<MISSING_AWS_REGION>"),
        ("recipientAccountId", "<MISSING_ACCOUNT_ID>"),
        ("sourceIPAddress", "<MISSING_SOURCE_IP>"),
        ("userAgent", "<MISSING_USER_AGENT>"),
        ("userIdentity", "<MISSING_USER_IDENTITY>"),
    ] {
        let v = mapping_get(it, e, &new_str(key), &new_str(default))?;
        d.insert(new_str(key), v).map_err(|e| it.hkey_err(e))?;
    }
    let inv = pantherflow_investigation(it, e, &new_str("30m"))?;
    d.insert(new_str("PantherFlow Investigation"), inv)
        .map_err(|e| it.hkey_err(e))?;
    Ok(new_dict(d))
}

fn pantherflow_investigation(it: &mut Interp, e: &Val, interval: &Val) -> R<Val> {
    let logtype = mapping_get(it, e, &new_str("p_log_type"), &new_str(""))?;
    let logtype = match &logtype {
        Val::Str(s) => s.to_lowercase().replace('.', "_"),
        other => {
            return Err(it.exc(
                "AttributeError",
                format!("'{}' object has no attribute 'lower'", type_name(other)),
            ));
        }
    };
    let timestamp = mapping_get(it, e, &new_str("p_event_time"), &new_str(""))?;
    let ts = it.to_str(&timestamp);
    let interval = it.to_str(interval);
    let mut query = format!(
        "union panther_signals.public.correlation_signals\n    , panther_logs.public.{logtype}\n| where p_event_time between time.parse_timestamp('{ts}') - time.parse_timespan('{interval}') .. time.parse_timestamp('{ts}') + time.parse_timespan('{interval}')\n"
    );
    let mut first = true;
    for (k, v) in it.mapping_items_where(e, |k| k.starts_with("p_any_"))? {
        let Val::Str(key) = &k else { continue };
        if key.starts_with("p_any_") && &**key != "p_any_aws_account_ids" {
            let copy = match &v {
                Val::List(l) => new_list(l.borrow().clone()),
                Val::Dict(d) => {
                    let mut c = d.borrow().clone();
                    c.case_insensitive = false;
                    new_dict(c)
                }
                Val::Set(s) => new_set(s.borrow().clone()),
                other => {
                    return Err(it.exc(
                        "AttributeError",
                        format!("'{}' object has no attribute 'copy'", type_name(other)),
                    ));
                }
            };
            let text = it.repr(&copy);
            if first {
                query.push_str(&format!("| where arrays.overlap({key}, {text})\n"));
                first = false;
            } else {
                query.push_str(&format!("     or arrays.overlap({key}, {text})\n"));
            }
        }
    }
    query.push_str("| sort p_event_time");
    it.mk_str(query)
}

// ---- caching ----

fn string_list(it: &mut Interp, v: &Val) -> R<Vec<String>> {
    match v {
        Val::Str(s) => Ok(vec![s.to_string()]),
        other => {
            let mut out = Vec::new();
            for x in it.iterate(other)? {
                out.push(it.to_str(&x));
            }
            Ok(out)
        }
    }
}

fn caching(it: &mut Interp, name: &str, args: Vec<Val>, mut kwargs: Vec<(String, Val)>) -> R<Val> {
    let f = &name[8..];
    let key_val = match args
        .first()
        .cloned()
        .or_else(|| take_kw(&mut kwargs, "key"))
    {
        Some(k) => k,
        None => return Err(it.type_error(format!("{f}() missing required argument 'key'"))),
    };
    if f == "check_account_age" {
        // Panther: a non-empty string key is looked up as a string set; anything else is false.
        let Val::Str(k) = &key_val else {
            return Ok(Val::Bool(false));
        };
        if k.is_empty() {
            return Ok(Val::Bool(false));
        }
        let now = it.ctx.now_ms;
        return Ok(Val::Bool(!it.ctx.state.get_string_set(k, now).is_empty()));
    }
    let key = it.to_str(&key_val);
    let now = it.ctx.now_ms;
    let set_val = |items: Vec<String>| {
        let mut d = Dict::default();
        for s in items {
            let _ = d.insert(new_str(s), Val::None);
        }
        new_set(d)
    };
    let second = |kwargs: &mut Vec<(String, Val)>, name: &str| {
        args.get(1).cloned().or_else(|| take_kw(kwargs, name))
    };
    match f {
        "get_string_set" => Ok(set_val(it.ctx.state.get_string_set(&key, now))),
        "put_string_set" => {
            let Some(v) = second(&mut kwargs, "val") else {
                return Err(it.type_error("put_string_set() missing required argument 'val'"));
            };
            let values = string_list(it, &v)?;
            let exp = match args
                .get(2)
                .cloned()
                .or_else(|| take_kw(&mut kwargs, "epoch_seconds"))
            {
                None | Some(Val::None) => None,
                Some(Val::Int(n)) => Some(n),
                Some(Val::Float(x)) => Some(x as i64),
                Some(Val::Str(s)) => Some(s.trim().parse::<i64>().map_err(|_| {
                    it.exc(
                        "ValueError",
                        format!("invalid epoch_seconds {}", str_repr(&s)),
                    )
                })?),
                Some(other) => {
                    return Err(it.type_error(format!(
                        "epoch_seconds must be int, not {}",
                        type_name(&other)
                    )));
                }
            };
            it.ctx.state.put_string_set(&key, values, exp, now);
            Ok(Val::None)
        }
        "add_to_string_set" | "remove_from_string_set" => {
            let Some(v) = second(&mut kwargs, "val") else {
                return Err(it.type_error(format!("{f}() missing required argument 'val'")));
            };
            let values = string_list(it, &v)?;
            let out = if f == "add_to_string_set" {
                it.ctx.state.add_to_string_set(&key, values, now)
            } else {
                it.ctx.state.remove_from_string_set(&key, values, now)
            };
            Ok(set_val(out))
        }
        "reset_string_set" => {
            it.ctx.state.reset_string_set(&key);
            Ok(Val::None)
        }
        "get_counter" => Ok(Val::Int(it.ctx.state.get_counter(&key, now))),
        "increment_counter" => {
            let by = match second(&mut kwargs, "val") {
                None => 1,
                Some(Val::Int(n)) => n,
                Some(other) => {
                    return Err(it.type_error(format!(
                        "increment_counter val must be int, not {}",
                        type_name(&other)
                    )));
                }
            };
            Ok(Val::Int(it.ctx.state.increment_counter(&key, by, now)))
        }
        "reset_counter" => {
            it.ctx.state.reset_counter(&key);
            Ok(Val::None)
        }
        "set_key_expiration" => {
            let exp = match second(&mut kwargs, "epoch_seconds") {
                Some(Val::Int(n)) => n,
                Some(Val::Float(x)) => x as i64,
                Some(Val::Str(s)) => s
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| it.exc("ValueError", "invalid epoch_seconds"))?,
                _ => return Err(it.type_error("set_key_expiration() needs epoch_seconds")),
            };
            it.ctx.state.set_key_expiration(&key, exp);
            Ok(Val::None)
        }
        _ => Err(it.fatal(format!("unsupported: caching.{f}"))),
    }
}

// ---- json.dumps ----

fn dumps(
    it: &mut Interp,
    v: &Val,
    sort_keys: bool,
    indent: Option<usize>,
    default_str: bool,
    depth: usize,
    out: &mut String,
) -> R<()> {
    if depth > 64 {
        return Err(it.fatal("a container nested too deeply (or holding itself) for json.dumps"));
    }
    it.check_str(out.len())?;
    let (item_sep, key_sep) = if indent.is_some() {
        (",", ": ")
    } else {
        (", ", ": ")
    };
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    match v {
        Val::None => out.push_str("null"),
        Val::Bool(true) => out.push_str("true"),
        Val::Bool(false) => out.push_str("false"),
        Val::Int(i) => out.push_str(&i.to_string()),
        Val::Float(f) => out.push_str(&if f.is_nan() {
            "NaN".to_string()
        } else if f.is_infinite() {
            if *f > 0.0 {
                "Infinity".into()
            } else {
                "-Infinity".into()
            }
        } else {
            float_repr(*f)
        }),
        Val::Str(s) => json_str(s, out),
        Val::List(_) | Val::Tuple(_) => {
            let items = it.iterate(v)?;
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                dumps(it, x, sort_keys, indent, default_str, depth + 1, out)?;
            }
            newline(out, depth);
            out.push(']');
        }
        Val::Dict(_) | Val::Event => {
            let mut items = it.mapping_items(v)?;
            if items.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            let mut keyed = Vec::with_capacity(items.len());
            for (k, x) in items.drain(..) {
                let ks = match &k {
                    Val::Str(s) => s.to_string(),
                    Val::Int(_) | Val::Float(_) | Val::Bool(_) | Val::None => json_key(&k),
                    other => {
                        return Err(it.type_error(format!(
                            "keys must be str, int, float, bool or None, not {}",
                            type_name(other)
                        )));
                    }
                };
                keyed.push((ks, x));
            }
            if sort_keys {
                keyed.sort_by(|a, b| a.0.cmp(&b.0));
            }
            out.push('{');
            for (i, (k, x)) in keyed.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                json_str(k, out);
                out.push_str(key_sep);
                dumps(it, x, sort_keys, indent, default_str, depth + 1, out)?;
            }
            newline(out, depth);
            out.push('}');
        }
        other if default_str => json_str(&it.to_str(other), out),
        other => {
            return Err(it.type_error(format!(
                "Object of type {} is not JSON serializable",
                type_name(other)
            )));
        }
    }
    Ok(())
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`).
fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ---- regular expressions ----

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Anchor {
    None,
    Start,
    Full,
}

fn flags_arg(it: &Interp, args: &[Val], at: usize, kwargs: &mut Vec<(String, Val)>) -> R<i64> {
    match args.get(at).cloned().or_else(|| take_kw(kwargs, "flags")) {
        None => Ok(0),
        Some(Val::Int(n)) => Ok(n),
        Some(other) => Err(it.type_error(format!("flags must be int, not {}", type_name(&other)))),
    }
}

/// Translates a Python regex into the Rust regex crate's syntax, or says why it cannot be
/// matched exactly. Differences handled: `\Z`; a `[` inside a class and the class-set
/// operators `&&`, `--`, `~~` (literal in Python); what the crate rejects (look-around,
/// back-references) stays an error.
pub fn translate_regex(p: &str) -> Result<String, String> {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    let mut class_start = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            let Some(n) = chars.next() else {
                return Err(format!("unsupported: regex {p:?} (trailing backslash)"));
            };
            match n {
                'Z' if !in_class => out.push_str("\\z"),
                'Z' => return Err(format!("unsupported: regex {p:?} (\\Z in a class)")),
                '0'..='9' if !in_class => {
                    return Err(format!("unsupported: regex {p:?} (back-reference)"));
                }
                _ => {
                    out.push('\\');
                    out.push(n);
                }
            }
            class_start = false;
            continue;
        }
        if in_class {
            match c {
                ']' if !class_start => {
                    in_class = false;
                    out.push(']');
                }
                '[' => out.push_str("\\["),
                '&' | '~' | '-' if chars.peek() == Some(&c) => {
                    out.push(c);
                    out.push('\\');
                    out.push(c);
                    chars.next();
                }
                _ => out.push(c),
            }
            class_start = class_start && c == '^';
            continue;
        }
        if c == '[' {
            in_class = true;
            class_start = true;
            out.push('[');
            if chars.peek() == Some(&'^') {
                out.push('^');
                chars.next();
            }
            if chars.peek() == Some(&']') {
                out.push_str("\\]");
                chars.next();
                class_start = false;
            }
            continue;
        }
        if c == '(' && chars.peek() == Some(&'?') {
            let rest: String = chars.clone().take(3).collect();
            if rest.starts_with("?=")
                || rest.starts_with("?!")
                || rest.starts_with("?<=")
                || rest.starts_with("?<!")
            {
                return Err(format!("unsupported: regex {p:?} (look-around)"));
            }
            if rest.starts_with("?P=") {
                return Err(format!("unsupported: regex {p:?} (back-reference)"));
            }
        }
        out.push(c);
    }
    regex::Regex::new(&out).map_err(|e| {
        format!(
            "unsupported: regex {p:?} ({})",
            e.to_string().lines().last().unwrap_or("invalid")
        )
    })?;
    Ok(out)
}

thread_local! {
    static REGEX_CACHE: RefCell<HashMap<(String, i64, u8), Rc<regex::Regex>>> = RefCell::new(HashMap::new());
}

fn compile(it: &Interp, p: &str, flags: i64, anchor: Anchor) -> R<Rc<regex::Regex>> {
    let key = (p.to_string(), flags, anchor as u8);
    if let Some(r) = REGEX_CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return Ok(r);
    }
    if flags & !(2 | 8 | 16) != 0 {
        return Err(it.fatal(format!("unsupported: regex flags {flags}")));
    }
    let body = translate_regex(p).map_err(|m| it.fatal(m))?;
    let mut prefix = String::new();
    if flags & 2 != 0 {
        prefix.push('i');
    }
    if flags & 8 != 0 {
        prefix.push('m');
    }
    if flags & 16 != 0 {
        prefix.push('s');
    }
    let mut full = if prefix.is_empty() {
        String::new()
    } else {
        format!("(?{prefix})")
    };
    match anchor {
        Anchor::None => full.push_str(&body),
        Anchor::Start => full.push_str(&format!("\\A(?:{body})")),
        Anchor::Full => full.push_str(&format!("\\A(?:{body})\\z")),
    }
    let re = regex::RegexBuilder::new(&full)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| it.fatal(format!("unsupported: regex {p:?} ({e})")))?;
    let re = Rc::new(re);
    REGEX_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 256 {
            c.clear();
        }
        c.insert(key, re.clone());
    });
    Ok(re)
}

/// Python's `$` also matches before a final newline; the crate's does not. Rather than guess,
/// a subject ending in a newline with a `$` in the pattern is refused.
fn check_dollar(it: &Interp, p: &str, subject: &str) -> R<()> {
    if subject.ends_with('\n') && p.contains('$') {
        return Err(it.fatal(format!(
            "unsupported: regex {p:?} with '$' on a subject ending in a newline"
        )));
    }
    Ok(())
}

fn match_val(caps: &regex::Captures<'_>) -> Val {
    Val::Match(Rc::new(
        caps.iter()
            .map(|g| g.map(|m| m.as_str().to_string()))
            .collect(),
    ))
}

fn regex_call(
    it: &mut Interp,
    p: &str,
    flags: i64,
    method: &str,
    args: Vec<Val>,
    kwargs: Vec<(String, Val)>,
) -> R<Val> {
    if let Some((k, _)) = kwargs.first() {
        return Err(it.fatal(format!("unsupported: re.{method} argument {k}")));
    }
    match method {
        "search" | "match" | "fullmatch" => {
            let s = arg(it, &args, 0, method)?;
            let s = str_of(it, &s, method)?.clone();
            check_dollar(it, p, &s)?;
            it.charge(s.len())?;
            let anchor = match method {
                "search" => Anchor::None,
                "match" => Anchor::Start,
                _ => Anchor::Full,
            };
            let re = compile(it, p, flags, anchor)?;
            // Most searches find nothing: deciding that needs no capture groups, which cost
            // several times more to track.
            if !re.is_match(&s) {
                return Ok(Val::None);
            }
            Ok(re.captures(&s).map_or(Val::None, |c| match_val(&c)))
        }
        "findall" => {
            let s = arg(it, &args, 0, method)?;
            let s = str_of(it, &s, method)?.clone();
            check_dollar(it, p, &s)?;
            it.charge(s.len())?;
            let re = compile(it, p, flags, Anchor::None)?;
            let groups = re.captures_len() - 1;
            let mut out = Vec::new();
            for c in re.captures_iter(&s) {
                let g = |i: usize| new_str(c.get(i).map_or("", |m| m.as_str()));
                out.push(match groups {
                    0 => g(0),
                    1 => g(1),
                    n => Val::Tuple(Rc::new((1..=n).map(g).collect())),
                });
                it.check_items(out.len())?;
            }
            Ok(new_list(out))
        }
        "sub" => {
            let repl = arg(it, &args, 0, method)?;
            let repl = str_of(it, &repl, method)?.clone();
            let s = arg(it, &args, 1, method)?;
            let s = str_of(it, &s, method)?.clone();
            check_dollar(it, p, &s)?;
            let count = match args.get(2) {
                Some(Val::Int(n)) => *n as usize,
                _ => 0,
            };
            if repl.contains('\\') {
                return Err(
                    it.fatal("unsupported: re.sub replacement with escapes or group references")
                );
            }
            it.charge(s.len())?;
            let re = compile(it, p, flags, Anchor::None)?;
            let out = re.replacen(&s, count, regex::NoExpand(&repl)).into_owned();
            it.mk_str(out)
        }
        "split" => {
            let s = arg(it, &args, 0, method)?;
            let s = str_of(it, &s, method)?.clone();
            check_dollar(it, p, &s)?;
            it.charge(s.len())?;
            let re = compile(it, p, flags, Anchor::None)?;
            if re.captures_len() > 1 {
                return Err(it.fatal("unsupported: re.split with capture groups"));
            }
            let parts: Vec<Val> = re.split(&s).map(new_str).collect();
            it.mk_list(parts)
        }
        _ => Err(it.exc(
            "AttributeError",
            format!("'re.Pattern' object has no attribute '{method}'"),
        )),
    }
}

// ---- fnmatch ----

thread_local! {
    static GLOB_CACHE: RefCell<HashMap<String, Rc<regex::Regex>>> = RefCell::new(HashMap::new());
}

/// `fnmatch.fnmatch` on POSIX (case-sensitive): `*`, `?`, `[seq]`, `[!seq]`, whole string.
fn fnmatch(it: &mut Interp, s: &Val, p: &Val) -> R<bool> {
    let s = str_of(it, s, "fnmatch")?.clone();
    let p = str_of(it, p, "fnmatch")?.clone();
    it.charge(s.len() + p.len())?;
    if let Some(r) = GLOB_CACHE.with(|c| c.borrow().get(&*p).cloned()) {
        return Ok(r.is_match(&s));
    }
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("(?s)\\A");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                while i < chars.len() && chars[i] == '*' {
                    i += 1;
                }
                re.push_str(".*");
            }
            '?' => re.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    re.push_str("\\[");
                    continue;
                }
                let stuff: Vec<char> = chars[i..j].to_vec();
                i = j + 1;
                let (negate, body) = match stuff.first() {
                    Some('!') => (true, &stuff[1..]),
                    _ => (false, &stuff[..]),
                };
                if body.is_empty() {
                    // `[!]` matches any character and `[]` nothing, as in Python 3.11+.
                    re.push_str(if negate { "." } else { "[^\\s\\S]" });
                    continue;
                }
                re.push('[');
                if negate {
                    re.push('^');
                }
                for (k, ch) in body.iter().enumerate() {
                    if *ch == '-' && k > 0 && k + 1 < body.len() {
                        re.push('-');
                    } else {
                        re.push_str(&regex::escape(&ch.to_string()));
                    }
                }
                re.push(']');
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
    }
    re.push_str("\\z");
    let compiled = regex::RegexBuilder::new(&re)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| it.fatal(format!("unsupported: glob {p:?} ({e})")))?;
    let compiled = Rc::new(compiled);
    GLOB_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 256 {
            c.clear();
        }
        c.insert(p.to_string(), compiled.clone());
    });
    Ok(compiled.is_match(&s))
}

// ---- ipaddress ----

/// Python's strict IPv4 text form: four decimal octets, no leading zeros.
fn parse_ipv4(s: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (o, p) in octets.iter_mut().zip(&parts) {
        if p.is_empty()
            || p.len() > 3
            || !p.bytes().all(|b| b.is_ascii_digit())
            || (p.len() > 1 && p.starts_with('0'))
        {
            return None;
        }
        *o = p.parse().ok()?;
    }
    Some(std::net::Ipv4Addr::from(octets))
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Some(v4) = parse_ipv4(s) {
        return Some(IpAddr::V4(v4));
    }
    if s.contains(':') && !s.contains('%') {
        return s.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    None
}

pub fn ip_address(it: &Interp, v: &Val) -> R<Val> {
    match v {
        Val::Ip(_) => Ok(v.clone()),
        Val::Str(s) => parse_ip(s).map(Val::Ip).ok_or_else(|| {
            it.exc(
                "ValueError",
                format!(
                    "{} does not appear to be an IPv4 or IPv6 address",
                    str_repr(s)
                ),
            )
        }),
        Val::Int(n) if *n >= 0 => {
            if *n <= u32::MAX as i64 {
                Ok(Val::Ip(IpAddr::V4(std::net::Ipv4Addr::from(*n as u32))))
            } else {
                Ok(Val::Ip(IpAddr::V6(std::net::Ipv6Addr::from(*n as u128))))
            }
        }
        other => Err(it.exc(
            "ValueError",
            format!(
                "{} does not appear to be an IPv4 or IPv6 address",
                py_repr(other)
            ),
        )),
    }
}

fn ip_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(a) => (u32::from(a) as u128, 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    }
}

pub fn ip_in_net(ip: IpAddr, base: IpAddr, prefix: u8) -> bool {
    let (a, wa) = ip_bits(ip);
    let (b, wb) = ip_bits(base);
    if wa != wb {
        return false;
    }
    let mask = if prefix == 0 {
        0
    } else {
        (!0u128 >> (128 - wa as u32)) & (!0u128 << (wa - prefix) as u32)
    };
    a & mask == b & mask
}

pub fn ip_network(it: &Interp, v: &Val, strict: bool) -> R<Val> {
    let Val::Str(s) = v else {
        if let Val::Ip(ip) = v {
            let w = ip_bits(*ip).1;
            return Ok(Val::Net(*ip, w));
        }
        return Err(it.exc(
            "ValueError",
            format!(
                "{} does not appear to be an IPv4 or IPv6 network",
                py_repr(v)
            ),
        ));
    };
    let bad = || {
        it.exc(
            "ValueError",
            format!(
                "{} does not appear to be an IPv4 or IPv6 network",
                str_repr(s)
            ),
        )
    };
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (&s[..], None),
    };
    let ip = parse_ip(addr).ok_or_else(bad)?;
    let width = ip_bits(ip).1;
    let prefix = match prefix {
        None => width,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 3 => {
            let n: u8 = p.parse().map_err(|_| bad())?;
            if n > width {
                return Err(bad());
            }
            n
        }
        Some(_) => return Err(it.fatal(format!("unsupported: netmask form of network {s:?}"))),
    };
    let (bits, _) = ip_bits(ip);
    let mask = if prefix == 0 {
        0
    } else {
        (!0u128 >> (128 - width as u32)) & (!0u128 << (width - prefix) as u32)
    };
    if bits
        & !mask
        & (if width == 32 {
            u32::MAX as u128
        } else {
            u128::MAX
        })
        != 0
        && strict
    {
        return Err(it.exc("ValueError", format!("{s} has host bits set")));
    }
    let base = match ip {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from((bits & mask) as u32)),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(bits & mask)),
    };
    Ok(Val::Net(base, prefix))
}

fn in_any(ip: IpAddr, nets: &[&str]) -> bool {
    nets.iter().any(|n| {
        let (a, p) = n.split_once('/').unwrap_or((n, "128"));
        match (parse_ip(a), p.parse::<u8>()) {
            (Some(base), Ok(p)) => ip_in_net(ip, base, p),
            _ => false,
        }
    })
}

/// The `is_private` tables of Python 3.11's `ipaddress` (the version Panther runs).
const V4_PRIVATE: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/29",
    "192.0.0.170/31",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
];
const V6_PRIVATE: &[&str] = &[
    "::1/128",
    "::/128",
    "::ffff:0:0/96",
    "100::/64",
    "2001::/23",
    "2001:2::/48",
    "2001:db8::/32",
    "2001:10::/28",
    "fc00::/7",
    "fe80::/10",
];

fn ip_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(_) => in_any(ip, V4_PRIVATE),
        IpAddr::V6(_) => in_any(ip, V6_PRIVATE),
    }
}

// ---- datetime ----

fn civil(us: i64, off: Option<i32>) -> Option<chrono::NaiveDateTime> {
    let local = us + off.unwrap_or(0) as i64 * 1_000_000;
    chrono::DateTime::from_timestamp(
        local.div_euclid(1_000_000),
        (local.rem_euclid(1_000_000) * 1000) as u32,
    )
    .map(|d| d.naive_utc())
}

fn from_civil(dt: chrono::NaiveDateTime, off: Option<i32>) -> i64 {
    dt.and_utc().timestamp_micros() - off.unwrap_or(0) as i64 * 1_000_000
}

pub fn strftime(it: &Interp, us: i64, off: Option<i32>, fmt: &str) -> R<String> {
    let Some(dt) = civil(us, off) else {
        return Err(it.exc("OverflowError", "date value out of range"));
    };
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        match d {
            'Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 'y' | 'b' | 'B' | 'a' | 'A' | 'j' | 'p' | 'I' => {
                out.push_str(&dt.format(&format!("%{d}")).to_string());
            }
            'f' => out.push_str(&format!("{:06}", us.rem_euclid(1_000_000))),
            'z' => {
                if let Some(o) = off {
                    let sign = if o < 0 { '-' } else { '+' };
                    let a = o.abs();
                    out.push_str(&format!("{sign}{:02}{:02}", a / 3600, (a % 3600) / 60));
                }
            }
            'Z' => {
                if off == Some(0) {
                    out.push_str("UTC");
                } else if off.is_some() {
                    return Err(it.fatal("unsupported: %Z of a non-UTC offset"));
                }
            }
            // glibc's %s: seconds since the epoch of the time read as local time; Panther's
            // runtime is UTC.
            's' => out.push_str(&dt.and_utc().timestamp().to_string()),
            '%' => out.push('%'),
            other => return Err(it.fatal(format!("unsupported: strftime directive %{other}"))),
        }
    }
    Ok(out)
}

/// `datetime.strptime` for the directives `%Y %m %d %H %M %S %f %z %y %b %p %I` and literals.
fn strptime(s: &str, fmt: &str) -> Result<Option<(i64, Option<i32>)>, String> {
    let sb: Vec<char> = s.chars().collect();
    let fb: Vec<char> = fmt.chars().collect();
    let (mut i, mut j) = (0usize, 0usize);
    let (mut year, mut month, mut day, mut hour, mut minute, mut second, mut micro) =
        (1900i64, 1u32, 1u32, 0u32, 0u32, 0u32, 0u32);
    let mut off: Option<i32> = None;
    let mut pm: Option<bool> = None;
    let digits = |i: &mut usize, max: usize| -> Option<i64> {
        let start = *i;
        while *i < sb.len() && *i - start < max && sb[*i].is_ascii_digit() {
            *i += 1;
        }
        if *i == start {
            return None;
        }
        sb[start..*i].iter().collect::<String>().parse().ok()
    };
    while j < fb.len() {
        let f = fb[j];
        if f == '%' && j + 1 < fb.len() {
            let d = fb[j + 1];
            j += 2;
            let ok = match d {
                'Y' => digits(&mut i, 4).map(|v| year = v).is_some(),
                'y' => digits(&mut i, 2)
                    .map(|v| year = if v < 69 { 2000 + v } else { 1900 + v })
                    .is_some(),
                'm' => digits(&mut i, 2).map(|v| month = v as u32).is_some(),
                'd' => digits(&mut i, 2).map(|v| day = v as u32).is_some(),
                'H' | 'I' => digits(&mut i, 2).map(|v| hour = v as u32).is_some(),
                'M' => digits(&mut i, 2).map(|v| minute = v as u32).is_some(),
                'S' => digits(&mut i, 2).map(|v| second = v as u32).is_some(),
                'f' => {
                    let start = i;
                    let v = digits(&mut i, 6);
                    let n = i - start;
                    v.map(|v| micro = (v * 10i64.pow(6 - n as u32)) as u32)
                        .is_some()
                }
                'p' => {
                    let rest: String = sb[i..]
                        .iter()
                        .take(2)
                        .collect::<String>()
                        .to_ascii_uppercase();
                    if rest == "AM" || rest == "PM" {
                        pm = Some(rest == "PM");
                        i += 2;
                        true
                    } else {
                        false
                    }
                }
                'b' => {
                    let rest: String = sb[i..]
                        .iter()
                        .take(3)
                        .collect::<String>()
                        .to_ascii_lowercase();
                    let months = [
                        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                        "nov", "dec",
                    ];
                    match months.iter().position(|m| *m == rest) {
                        Some(p) => {
                            month = p as u32 + 1;
                            i += 3;
                            true
                        }
                        None => false,
                    }
                }
                'z' => {
                    if sb.get(i) == Some(&'Z') {
                        i += 1;
                        off = Some(0);
                        true
                    } else if matches!(sb.get(i), Some('+' | '-')) {
                        let neg = sb[i] == '-';
                        i += 1;
                        let h = digits(&mut i, 2);
                        if sb.get(i) == Some(&':') {
                            i += 1;
                        }
                        let m = digits(&mut i, 2);
                        match (h, m) {
                            (Some(h), Some(m)) => {
                                let secs = (h * 3600 + m * 60) as i32;
                                off = Some(if neg { -secs } else { secs });
                                true
                            }
                            _ => false,
                        }
                    } else {
                        false
                    }
                }
                'Z' => {
                    let rest: String = sb[i..]
                        .iter()
                        .take(3)
                        .collect::<String>()
                        .to_ascii_lowercase();
                    if rest == "utc" || rest == "gmt" {
                        i += 3;
                        true
                    } else {
                        false
                    }
                }
                '%' => {
                    if sb.get(i) == Some(&'%') {
                        i += 1;
                        true
                    } else {
                        false
                    }
                }
                other => return Err(format!("unsupported: strptime directive %{other}")),
            };
            if !ok {
                return Ok(None);
            }
            continue;
        }
        if f.is_whitespace() {
            // Python turns format whitespace into `\s+`: at least one whitespace character.
            if !sb.get(i).is_some_and(|c| c.is_whitespace()) {
                return Ok(None);
            }
            while i < sb.len() && sb[i].is_whitespace() {
                i += 1;
            }
            j += 1;
            continue;
        }
        if sb.get(i) != Some(&f) {
            return Ok(None);
        }
        i += 1;
        j += 1;
    }
    if i != sb.len() {
        return Ok(None);
    }
    if let Some(pm) = pm {
        if hour > 12 || hour == 0 {
            return Ok(None);
        }
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    let Some(date) = chrono::NaiveDate::from_ymd_opt(year as i32, month, day) else {
        return Ok(None);
    };
    let Some(time) = chrono::NaiveTime::from_hms_micro_opt(hour, minute, second, micro) else {
        return Ok(None);
    };
    Ok(Some((from_civil(date.and_time(time), off), off)))
}

/// `datetime.fromisoformat` (Python 3.11): a date, optionally a separator and a time with
/// optional fraction (up to 6 digits kept) and an offset or `Z`.
fn fromisoformat(s: &str) -> Option<(i64, Option<i32>)> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    if b.len() == 10 {
        return Some((from_civil(date.and_hms_opt(0, 0, 0)?, None), None));
    }
    let rest = s.get(11..)?;
    let (time_part, off) = if let Some(t) = rest.strip_suffix('Z') {
        (t, Some(0))
    } else if let Some(p) = rest.rfind(['+', '-']) {
        let o = &rest[p + 1..];
        let (h, m) = match o.split_once(':') {
            Some((h, m)) => (h, m),
            None if o.len() == 4 => (&o[..2], &o[2..]),
            None if o.len() == 2 => (o, "00"),
            None => return None,
        };
        let secs = (h.parse::<i32>().ok()? * 3600) + m.get(..2)?.parse::<i32>().ok()? * 60;
        (
            &rest[..p],
            Some(if &rest[p..p + 1] == "-" { -secs } else { secs }),
        )
    } else {
        (rest, None)
    };
    let (hms, frac) = match time_part.split_once(['.', ',']) {
        Some((a, f)) => (a, Some(f)),
        None => (time_part, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let p = |i: usize| -> Option<u32> {
        parts.get(i).map_or(
            Some(0),
            |x| if x.len() == 2 { x.parse().ok() } else { None },
        )
    };
    if parts.is_empty() || parts.len() > 3 {
        return None;
    }
    let micro = match frac {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) => {
            let f6: String = f.chars().chain(std::iter::repeat('0')).take(6).collect();
            f6.parse().ok()?
        }
        Some(_) => return None,
    };
    let time = chrono::NaiveTime::from_hms_micro_opt(p(0)?, p(1)?, p(2)?, micro)?;
    Some((from_civil(date.and_time(time), off), off))
}

/// `panther_base_helpers.TIME_FORMATS`, tried in this order.
const TIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%dT%H:%M:%S.%fZ",
    "%Y-%m-%dT%H:%M:%S*%f%z",
    "%Y %b %d %H:%M:%S.%f %Z",
    "%b %d %H:%M:%S %z %Y",
    "%d/%b/%Y:%H:%M:%S %z",
    "%b %d, %Y %I:%M:%S %p",
    "%b %d %Y %H:%M:%S",
    "%b %d %H:%M:%S %Y",
    "%b %d %H:%M:%S %z",
    "%b %d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
    "%Y-%m-%d %H:%M:%S %z",
    "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%d %H:%M:%S,%f",
    "%Y/%m/%d*%H:%M:%S",
    "%Y %b %d %H:%M:%S.%f*%Z",
    "%Y %b %d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S,%f%z",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S.%f%z",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d*%H:%M:%S:%f",
    "%Y-%m-%d*%H:%M:%S",
    "%y-%m-%d %H:%M:%S,%f %z",
    "%y-%m-%d %H:%M:%S,%f",
    "%y-%m-%d %H:%M:%S",
    "%y/%m/%d %H:%M:%S",
    "%y%m%d %H:%M:%S",
    "%Y%m%d %H:%M:%S.%f",
    "%m/%d/%y*%H:%M:%S",
    "%m/%d/%Y*%H:%M:%S",
    "%m/%d/%Y*%H:%M:%S*%f",
    "%m/%d/%y %H:%M:%S %z",
    "%m/%d/%Y %H:%M:%S %z",
    "%H:%M:%S",
    "%H:%M:%S.%f",
    "%H:%M:%S,%f",
    "%d/%b %H:%M:%S,%f",
    "%d/%b/%Y:%H:%M:%S",
    "%d/%b/%Y %H:%M:%S",
    "%d-%b-%Y %H:%M:%S",
    "%d-%b-%Y %H:%M:%S.%f",
    "%d %b %Y %H:%M:%S",
    "%d %b %Y %H:%M:%S*%f",
    "%m%d_%H:%M:%S",
    "%m%d_%H:%M:%S.%f",
    "%m/%d/%Y %I:%M:%S %p:%f",
    "%m/%d/%Y %I:%M:%S %p",
];

/// The one shape of dateutil's parser this runtime reproduces: `YYYY-MM-DD`, a space or `T`,
/// `HH:MM:SS`, a fraction of any length (dateutil keeps six digits), then `Z`/`UTC` or nothing.
fn dateutil_iso(s: &str) -> Option<(i64, Option<i32>)> {
    let (body, off) = if let Some(b) = s.strip_suffix('Z') {
        (b, Some(0))
    } else if let Some(b) = s.strip_suffix(" UTC") {
        (b, Some(0))
    } else {
        (s, None)
    };
    let b = body.as_bytes();
    if b.len() < 19 || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| {
        body.get(r)
            .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
    };
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, se) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let micro = match body.get(19..) {
        Some("") => 0,
        Some(f)
            if f.starts_with('.') && f.len() > 1 && f[1..].bytes().all(|c| c.is_ascii_digit()) =>
        {
            f[1..]
                .chars()
                .chain(std::iter::repeat('0'))
                .take(6)
                .collect::<String>()
                .parse()
                .ok()?
        }
        _ => return None,
    };
    let date = chrono::NaiveDate::from_ymd_opt(y.parse().ok()?, mo.parse().ok()?, d.parse().ok()?)?;
    let time = chrono::NaiveTime::from_hms_micro_opt(
        h.parse().ok()?,
        mi.parse().ok()?,
        se.parse().ok()?,
        micro,
    )?;
    Some((from_civil(date.and_time(time), off), off))
}

/// Panther's `resolve_timestamp_string`: the formats of `TIME_FORMATS` in order, then dateutil
/// for the ISO shape above; any other text would need the rest of dateutil and the epoch
/// fallback, so it is refused rather than guessed.
fn resolve_timestamp_string(it: &Interp, ts: &Val) -> R<Val> {
    if !it.truth(ts)? {
        return Ok(Val::None);
    }
    let Val::Str(s) = ts else {
        return Err(it.fatal("unsupported: resolve_timestamp_string of a non-string"));
    };
    let s = s.replace('\'', "");
    for f in TIME_FORMATS {
        match strptime(&s, f) {
            Ok(Some((us, off))) => return Ok(Val::DateTime(us, off)),
            Ok(None) => {}
            Err(m) => return Err(it.fatal(m)),
        }
    }
    match dateutil_iso(&s) {
        Some((us, off)) => Ok(Val::DateTime(us, off)),
        None => Err(it.fatal(format!(
            "unsupported: resolve_timestamp_string({s:?}) needs dateutil"
        ))),
    }
}

fn num_f(it: &Interp, v: &Val) -> R<f64> {
    match v {
        Val::Int(i) => Ok(*i as f64),
        Val::Bool(b) => Ok(*b as i64 as f64),
        Val::Float(f) => Ok(*f),
        other => Err(it.type_error(format!(
            "unsupported type for timedelta component: {}",
            type_name(other)
        ))),
    }
}

fn timedelta(it: &Interp, args: &[Val], kwargs: Vec<(String, Val)>) -> R<Val> {
    let names = [
        "days",
        "seconds",
        "microseconds",
        "milliseconds",
        "minutes",
        "hours",
        "weeks",
    ];
    let scale = [86_400e6, 1e6, 1.0, 1e3, 60e6, 3600e6, 604_800e6];
    let mut total = 0f64;
    for (i, a) in args.iter().enumerate() {
        let Some(s) = scale.get(i) else {
            return Err(it.type_error("timedelta takes at most 7 arguments"));
        };
        total += num_f(it, a)? * s;
    }
    for (k, v) in &kwargs {
        let Some(i) = names.iter().position(|n| n == k) else {
            return Err(it.type_error(format!(
                "'{k}' is an invalid keyword argument for timedelta"
            )));
        };
        total += num_f(it, v)? * scale[i];
    }
    if !total.is_finite() || total.abs() > 8.64e19 {
        return Err(it.exc("OverflowError", "timedelta out of range"));
    }
    Ok(Val::Delta(total.round() as i64))
}

// ---- attributes and methods of the other value types ----

pub fn value_attr(it: &mut Interp, obj: &Val, name: &str) -> R<Option<Val>> {
    Ok(Some(match (obj, name) {
        (Val::Ip(ip), "is_private") => Val::Bool(ip_private(*ip)),
        (Val::Ip(ip), "is_global") => Val::Bool(match ip {
            IpAddr::V4(_) => !in_any(*ip, &["100.64.0.0/10"]) && !ip_private(*ip),
            IpAddr::V6(_) => !ip_private(*ip),
        }),
        (Val::Ip(ip), "is_loopback") => Val::Bool(ip.is_loopback()),
        (Val::Ip(ip), "is_multicast") => Val::Bool(ip.is_multicast()),
        (Val::Ip(ip), "is_unspecified") => Val::Bool(ip.is_unspecified()),
        (Val::Ip(ip), "is_link_local") => Val::Bool(match ip {
            IpAddr::V4(_) => in_any(*ip, &["169.254.0.0/16"]),
            IpAddr::V6(_) => in_any(*ip, &["fe80::/10"]),
        }),
        (Val::Ip(ip), "is_reserved") => Val::Bool(match ip {
            IpAddr::V4(_) => in_any(*ip, &["240.0.0.0/4"]),
            IpAddr::V6(_) => return Err(it.fatal("unsupported: IPv6Address.is_reserved")),
        }),
        (Val::Ip(ip), "version") => Val::Int(if ip.is_ipv4() { 4 } else { 6 }),
        (Val::Ip(ip), "compressed") => new_str(ip.to_string()),
        (Val::Net(ip, _), "network_address") => Val::Ip(*ip),
        (Val::Net(_, p), "prefixlen") => Val::Int(*p as i64),
        (Val::Net(ip, _), "version") => Val::Int(if ip.is_ipv4() { 4 } else { 6 }),
        (Val::Net(ip, _), "is_private") => Val::Bool(ip_private(*ip)),
        (
            Val::DateTime(us, off),
            f @ ("year" | "month" | "day" | "hour" | "minute" | "second" | "microsecond"),
        ) => {
            use chrono::{Datelike, Timelike};
            let Some(dt) = civil(*us, *off) else {
                return Err(it.exc("OverflowError", "date value out of range"));
            };
            Val::Int(match f {
                "year" => dt.year() as i64,
                "month" => dt.month() as i64,
                "day" => dt.day() as i64,
                "hour" => dt.hour() as i64,
                "minute" => dt.minute() as i64,
                "second" => dt.second() as i64,
                _ => us.rem_euclid(1_000_000),
            })
        }
        (Val::DateTime(_, off), "tzinfo") => match off {
            None => Val::None,
            Some(0) => Val::Native("datetime.timezone.utc"),
            Some(_) => return Err(it.fatal("unsupported: tzinfo of a non-UTC offset")),
        },
        (
            Val::DateTime(..),
            "timestamp" | "isoformat" | "strftime" | "replace" | "date" | "astimezone",
        ) => Val::Method(Box::new(obj.clone()), Rc::from(name)),
        (Val::Delta(us), "days") => Val::Int(us.div_euclid(86_400_000_000)),
        (Val::Delta(us), "seconds") => Val::Int(us.rem_euclid(86_400_000_000) / 1_000_000),
        (Val::Delta(us), "microseconds") => Val::Int(us.rem_euclid(1_000_000)),
        (Val::Delta(_), "total_seconds") => Val::Method(Box::new(obj.clone()), Rc::from(name)),
        _ => return Ok(None),
    }))
}

pub fn value_method(
    it: &mut Interp,
    recv: &Val,
    name: &str,
    args: Vec<Val>,
    mut kwargs: Vec<(String, Val)>,
) -> R<Val> {
    match recv {
        Val::Regex(p, flags) => {
            let p = p.clone();
            regex_call(it, &p, *flags, name, args, kwargs)
        }
        Val::Lut(kind, matches) => lut_lookup(it, kind, matches, name, &args),
        Val::Match(groups) => match name {
            "group" => {
                let idx: Vec<usize> = if args.is_empty() {
                    vec![0]
                } else {
                    args.iter()
                        .map(|a| match a {
                            Val::Int(n) if *n >= 0 => Ok(*n as usize),
                            _ => Err(it.fatal("unsupported: named or negative match group")),
                        })
                        .collect::<R<_>>()?
                };
                let get = |i: usize| -> R<Val> {
                    match groups.get(i) {
                        Some(Some(g)) => Ok(new_str(g.as_str())),
                        Some(None) => Ok(Val::None),
                        None => Err(it.exc("IndexError", "no such group")),
                    }
                };
                if idx.len() == 1 {
                    get(idx[0])
                } else {
                    Ok(Val::Tuple(Rc::new(
                        idx.into_iter().map(get).collect::<R<_>>()?,
                    )))
                }
            }
            "groups" => Ok(Val::Tuple(Rc::new(
                groups
                    .iter()
                    .skip(1)
                    .map(|g| g.as_ref().map_or(Val::None, |s| new_str(s.as_str())))
                    .collect(),
            ))),
            _ => Err(it.fatal(format!("unsupported: Match.{name}"))),
        },
        Val::Native("datetime.datetime") => {
            let tz_utc = |v: Option<&Val>| matches!(v, Some(Val::Native("datetime.timezone.utc")));
            match name {
                "now" | "utcnow" => {
                    let tz = args.first().cloned().or_else(|| take_kw(&mut kwargs, "tz"));
                    let us = it.ctx.now_ms.saturating_mul(1000);
                    match tz {
                        None | Some(Val::None) => Ok(Val::DateTime(us, None)),
                        Some(ref t) if name == "now" && tz_utc(Some(t)) => {
                            Ok(Val::DateTime(us, Some(0)))
                        }
                        Some(_) => Err(it.fatal("unsupported: time zone other than UTC")),
                    }
                }
                "fromtimestamp" | "utcfromtimestamp" => {
                    let ts = arg(it, &args, 0, name)?;
                    let secs = num_f(it, &ts)?;
                    let tz = args.get(1).cloned().or_else(|| take_kw(&mut kwargs, "tz"));
                    let off = match tz {
                        None | Some(Val::None) => None,
                        Some(ref t) if tz_utc(Some(t)) => Some(0),
                        Some(_) => return Err(it.fatal("unsupported: time zone other than UTC")),
                    };
                    Ok(Val::DateTime((secs * 1e6).round() as i64, off))
                }
                "strptime" => {
                    let s = arg(it, &args, 0, name)?;
                    let f = arg(it, &args, 1, name)?;
                    let (s, f) = (str_of(it, &s, name)?.clone(), str_of(it, &f, name)?.clone());
                    match strptime(&s, &f).map_err(|m| it.fatal(m))? {
                        Some((us, off)) => Ok(Val::DateTime(us, off)),
                        None => Err(it.exc(
                            "ValueError",
                            format!(
                                "time data {} does not match format {}",
                                str_repr(&s),
                                str_repr(&f)
                            ),
                        )),
                    }
                }
                "fromisoformat" => {
                    let s = arg(it, &args, 0, name)?;
                    let s = str_of(it, &s, name)?.clone();
                    fromisoformat(&s)
                        .map(|(us, off)| Val::DateTime(us, off))
                        .ok_or_else(|| {
                            it.exc(
                                "ValueError",
                                format!("Invalid isoformat string: {}", str_repr(&s)),
                            )
                        })
                }
                _ => Err(it.exc(
                    "AttributeError",
                    format!("type object 'datetime' has no attribute '{name}'"),
                )),
            }
        }
        Val::DateTime(us, off) => match name {
            "timestamp" => Ok(Val::Float(*us as f64 / 1e6)),
            "isoformat" => {
                let sep = match args
                    .first()
                    .cloned()
                    .or_else(|| take_kw(&mut kwargs, "sep"))
                {
                    Some(Val::Str(s)) => s.chars().next().unwrap_or('T'),
                    _ => 'T',
                };
                Ok(new_str(datetime_str(*us, *off, sep)))
            }
            "strftime" => {
                let f = arg(it, &args, 0, name)?;
                let f = str_of(it, &f, name)?.clone();
                Ok(new_str(strftime(it, *us, *off, &f)?))
            }
            "replace" => {
                let tz = take_kw(&mut kwargs, "tzinfo");
                if !args.is_empty() || !kwargs.is_empty() {
                    return Err(it.fatal("unsupported: datetime.replace other than tzinfo="));
                }
                match tz {
                    Some(Val::None) => Ok(Val::DateTime(
                        *us + off.unwrap_or(0) as i64 * 1_000_000,
                        None,
                    )),
                    Some(Val::Native("datetime.timezone.utc")) => Ok(Val::DateTime(
                        *us + off.unwrap_or(0) as i64 * 1_000_000,
                        Some(0),
                    )),
                    _ => Err(it.fatal("unsupported: datetime.replace with this tzinfo")),
                }
            }
            _ => Err(it.fatal(format!("unsupported: datetime.{name}"))),
        },
        Val::Delta(us) if name == "total_seconds" => Ok(Val::Float(*us as f64 / 1e6)),
        other => Err(it.exc(
            "AttributeError",
            format!("'{}' object has no attribute '{name}'", type_name(other)),
        )),
    }
}

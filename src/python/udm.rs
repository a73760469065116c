//! `event.udm(...)` through the AWS CloudTrail data model (`Standard.AWS.CloudTrail`),
//! implemented natively: `actor_user`, `event_type`, `source_ip` are methods; `user_agent`,
//! `user` and `user_account_id` are JSON paths. The runtime applies this model to every event:
//! the Panther rules that call `udm` are CloudTrail rules.

use std::net::IpAddr;

use super::helpers::{deep_get, ip_address};
use super::interp::{Interp, R};
use super::value::*;

fn key(s: &str) -> Val {
    new_str(s)
}

fn path(it: &mut Interp, keys: &[&str]) -> R<Option<Val>> {
    // A JSON path like `$.responseElements.user.userName` matches only when every step is an
    // object holding the key; a match whose value is null still counts as a match.
    let mut cur = Val::Event;
    for k in keys {
        let next = match &cur {
            Val::Event => super::native::event_get(it, k),
            Val::Dict(d) => d.borrow().get_str(k).cloned(),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return Ok(None),
        }
    }
    Ok(Some(cur))
}

/// `event.udm_path(key)`: the mapped JSON path (as jsonpath prints it) when it matches, the
/// method's name for a method mapping, else None.
pub fn udm_path(it: &mut Interp, key: &Val) -> R<Val> {
    let Val::Str(name) = key else {
        return Ok(Val::None);
    };
    let mapped: Option<&[&str]> = match &**name {
        "user_agent" => Some(&["userAgent"]),
        "user" => Some(&["responseElements", "user", "userName"]),
        "user_account_id" => Some(&["responseElements", "user", "userId"]),
        _ => None,
    };
    if let Some(p) = mapped {
        return Ok(match path(it, p)? {
            Some(_) => new_str(p.join(".")),
            None => Val::None,
        });
    }
    Ok(match &**name {
        "actor_user" => new_str("get_actor_user"),
        "event_type" => new_str("get_event_type"),
        "source_ip" => new_str("load_ip_address"),
        _ => Val::None,
    })
}

pub fn udm(it: &mut Interp, keys: &[Val], default: &Val) -> R<Val> {
    if let [Val::Str(name)] = keys {
        let mapped: Option<&[&str]> = match &**name {
            "user_agent" => Some(&["userAgent"]),
            "user" => Some(&["responseElements", "user", "userName"]),
            "user_account_id" => Some(&["responseElements", "user", "userId"]),
            _ => None,
        };
        if let Some(p) = mapped {
            return Ok(path(it, p)?.unwrap_or_else(|| default.clone()));
        }
        match &**name {
            "actor_user" => return get_actor_user(it, &Val::Event),
            "event_type" => return get_event_type(it),
            "source_ip" => return load_ip_address(it),
            _ => {}
        }
    }
    if keys.is_empty() {
        return Ok(default.clone());
    }
    let mut with_udm = vec![key("p_udm")];
    with_udm.extend(keys.iter().cloned());
    let mut result = deep_get(it, &Val::Event, &with_udm, &Val::None)?;
    if !it.truth(&result)? {
        result = deep_get(it, &Val::Event, keys, &Val::None)?;
    }
    if it.truth(&result)? {
        return Ok(result);
    }
    Ok(default.clone())
}

fn dg(it: &mut Interp, e: &Val, keys: &[&str], default: Val) -> R<Val> {
    let keys: Vec<Val> = keys.iter().map(|k| key(k)).collect();
    deep_get(it, e, &keys, &default)
}

fn get(it: &mut Interp, e: &Val, k: &str, default: Val) -> R<Val> {
    super::native::call_method(it, e, "get", vec![key(k), default], Vec::new())
}

/// `panther_aws_helpers.get_actor_user`.
pub fn get_actor_user(it: &mut Interp, e: &Val) -> R<Val> {
    let user_type = dg(it, e, &["userIdentity", "type"], Val::None)?;
    let t = match &user_type {
        Val::Str(s) => s.to_string(),
        other => py_str(other),
    };
    let unknown = || new_str(format!("Unknown{t}"));
    let is = |names: &[&str]| matches!(&user_type, Val::Str(s) if names.contains(&&**s));
    if is(&["Root"]) {
        let d = dg(
            it,
            e,
            &["userIdentity", "accountId"],
            key("UnknownRootUser"),
        )?;
        return dg(it, e, &["userIdentity", "userName"], d);
    }
    if is(&[
        "IAMUser",
        "Directory",
        "Unknown",
        "SAMLUser",
        "WebIdentityUser",
    ]) {
        return dg(it, e, &["userIdentity", "userName"], unknown());
    }
    if is(&["AssumedRole", "Role", "FederatedUser"]) {
        let actor = dg(
            it,
            e,
            &[
                "userIdentity",
                "sessionContext",
                "sessionIssuer",
                "userName",
            ],
            unknown(),
        )?;
        let Val::Str(a) = &actor else {
            return Err(it.exc(
                "AttributeError",
                format!(
                    "'{}' object has no attribute 'startswith'",
                    type_name(&actor)
                ),
            ));
        };
        if a.starts_with("AWSReservedSSO_") {
            let pid = dg(it, e, &["userIdentity", "principalId"], unknown())?;
            let Val::Str(p) = &pid else {
                return Err(it.exc(
                    "AttributeError",
                    format!("'{}' object has no attribute 'split'", type_name(&pid)),
                ));
            };
            return match p.split(':').nth(1) {
                Some(s) => Ok(new_str(s)),
                None => Err(it.exc("IndexError", "list index out of range")),
            };
        }
        return Ok(actor);
    }
    if is(&["IdentityCenterUser"]) {
        return dg(it, e, &["additionalEventData", "UserName"], unknown());
    }
    if is(&["AWSService", "AWSAccount"]) {
        return get(it, e, "sourceIdentity", unknown());
    }
    let et = get(it, e, "eventType", Val::None)?;
    if matches!(&et, Val::Str(s) if &**s == "AwsServiceEvent") {
        return dg(
            it,
            e,
            &["userIdentity", "invokedBy"],
            key("UnknownAwsServiceEvent"),
        );
    }
    Ok(key("UnknownUser"))
}

fn get_event_type(it: &mut Interp) -> R<Val> {
    let e = Val::Event;
    let name = get(it, &e, "eventName", Val::None)?;
    let is_name = |n: &str| matches!(&name, Val::Str(s) if &**s == n);
    if is_name("ConsoleLogin") {
        let t = dg(it, &e, &["userIdentity", "type"], Val::None)?;
        if matches!(&t, Val::Str(s) if &**s == "IAMUser") {
            let r = dg(it, &e, &["responseElements", "ConsoleLogin"], Val::None)?;
            if matches!(&r, Val::Str(s) if &**s == "Failure") {
                return Ok(key("failed_login"));
            }
            if matches!(&r, Val::Str(s) if &**s == "Success") {
                return Ok(key("successful_login"));
            }
        }
    }
    if is_name("CreateUser") {
        return Ok(key("user_account_created"));
    }
    if is_name("CreateAccountResult") {
        return Ok(key("account_created"));
    }
    Ok(Val::None)
}

fn load_ip_address(it: &mut Interp) -> R<Val> {
    let ip = get(it, &Val::Event, "sourceIPAddress", Val::None)?;
    if !it.truth(&ip)? {
        return Ok(Val::None);
    }
    // `IPv4Address(x)` then `IPv6Address(x)`; a value that is neither is not an IP.
    match &ip {
        Val::Str(_) | Val::Int(_) => match ip_address(it, &ip) {
            Ok(Val::Ip(IpAddr::V4(_) | IpAddr::V6(_))) => Ok(ip),
            _ => Ok(Val::None),
        },
        _ => Err(it.fatal(format!("unsupported: source_ip of a {}", type_name(&ip)))),
    }
}

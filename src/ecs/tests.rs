use super::*;
use serde_json::json;

fn get(field: &str, record: &Value) -> Option<Value> {
    derive(field, &Event::new(record))
}

fn sample() -> Value {
    json!({
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": "AROAEXAMPLE:alice",
            "arn": "arn:aws:sts::111122223333:assumed-role/Admin/alice",
            "accountId": "111122223333",
            "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "userName": "Admin", "arn": "arn:aws:iam::111122223333:role/Admin"},
                "attributes": {"mfaAuthenticated": "false", "creationDate": "2024-01-01T00:00:00Z"}
            }
        },
        "eventTime": "2024-01-01T00:10:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": "AttachUserPolicy",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "203.0.113.7",
        "userAgent": "aws-cli/2.15.0",
        "errorCode": "",
        "requestParameters": {"userName": "bob", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        "responseElements": null,
        "tlsDetails": {"tlsVersion": "TLSv1.3", "clientProvidedHostHeader": "iam.amazonaws.com"},
        "resources": [{"ARN": "arn:aws:iam::111122223333:user/bob", "accountId": "111122223333", "type": "AWS::IAM::User"}],
        "recipientAccountId": "111122223333"
    })
}

#[test]
fn direct_and_computed_fields() {
    let record = sample();
    assert_eq!(
        get("event.action", &record),
        Some(json!("AttachUserPolicy"))
    );
    assert_eq!(
        get("event.provider", &record),
        Some(json!("iam.amazonaws.com"))
    );
    // An empty errorCode is pruned before the outcome is computed.
    assert_eq!(get("event.outcome", &record), Some(json!("success")));
    assert_eq!(get("aws.cloudtrail.error_code", &record), None);
    assert_eq!(
        get("data_stream.dataset", &record),
        Some(json!("aws.cloudtrail"))
    );
    assert_eq!(
        get("cloud.account.id", &record),
        Some(json!("111122223333"))
    );
    assert_eq!(get("user.id", &record), Some(json!("AROAEXAMPLE:alice")));
    // No userIdentity.userName: the session issuer's name.
    assert_eq!(get("user.name", &record), Some(json!("Admin")));
    assert_eq!(get("user.target.name", &record), Some(json!("bob")));
    assert_eq!(get("source.ip", &record), Some(json!("203.0.113.7")));
    assert_eq!(get("tls.version", &record), Some(json!("1.3")));
    assert_eq!(get("tls.version_protocol", &record), Some(json!("tls")));
    assert_eq!(
        get("aws.cloudtrail.resources.arn", &record),
        Some(json!("arn:aws:iam::111122223333:user/bob"))
    );
    assert_eq!(get("aws.cloudtrail.response_elements", &record), None);
    assert_eq!(
        get(
            "aws.cloudtrail.flattened.request_parameters.userName",
            &record
        ),
        Some(json!("bob"))
    );
    // Enrichment is never invented.
    assert_eq!(get("source.as.organization.name", &record), None);
    assert_eq!(get("user_agent.name", &record), None);
    assert!(!is_derivable("source.geo.country_iso_code"));
    assert!(is_derivable(
        "aws.cloudtrail.flattened.request_parameters.x.y"
    ));
}

#[test]
fn categories_from_the_action_table() {
    let record = sample();
    assert_eq!(get("event.category", &record), Some(json!(["iam"])));
    assert_eq!(get("event.type", &record), Some(json!(["user", "change"])));
    let other = json!({"eventSource": "s3.amazonaws.com", "eventName": "PutObject"});
    assert_eq!(get("event.category", &other), None);
    assert_eq!(get("event.type", &other), Some(json!(["info"])));
}

#[test]
fn rename_does_not_overwrite_user_name() {
    let mut record = sample();
    record["userIdentity"]["userName"] = json!("carol");
    assert_eq!(get("user.name", &record), Some(json!("carol")));
}

#[test]
fn outcome_failure_and_console_login() {
    let mut record = sample();
    record["errorMessage"] = json!("denied");
    assert_eq!(get("event.outcome", &record), Some(json!("failure")));
    let login = json!({
        "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin",
        "responseElements": {"ConsoleLogin": "Failure"},
        "additionalEventData": {"MFAUsed": "No", "MobileVersion": "No", "LoginTo": "https://console"}
    });
    assert_eq!(get("event.outcome", &login), Some(json!("failure")));
    assert_eq!(
        get(
            "aws.cloudtrail.console_login.additional_eventdata.mfa_used",
            &login
        ),
        Some(json!(false))
    );
    assert_eq!(
        get(
            "aws.cloudtrail.console_login.additional_eventdata.login_to",
            &login
        ),
        Some(json!("https://console"))
    );
}

#[test]
fn source_ip_only_when_an_ip() {
    let record = json!({"eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
                        "sourceIPAddress": "autoscaling.amazonaws.com"});
    assert_eq!(
        get("source.address", &record),
        Some(json!("autoscaling.amazonaws.com"))
    );
    assert_eq!(get("source.ip", &record), None);
    let v6 = json!({"eventSource": "s3", "sourceIPAddress": "2001:db8::1"});
    assert_eq!(get("source.ip", &v6), Some(json!("2001:db8::1")));
}

#[test]
fn not_cloudtrail_derives_nothing() {
    let record = json!({"message": "hello", "userAgent": "curl"});
    assert_eq!(get("data_stream.dataset", &record), None);
    assert_eq!(get("user_agent.original", &record), None);
}

#[test]
fn java_map_strings() {
    // One key: no ordering question.
    assert_eq!(java_map_string(&json!({"a": 1})), "{a=1}");
    assert_eq!(
        java_map_string(&json!({"x": [1, "b", {"k": true}], "y": 1.5})),
        "{x=[1, b, {k=true}], y=1.5}"
    );
    assert_eq!(java_double(1.0), "1.0");
    assert_eq!(java_double(1e10), "1.0E10");
    assert_eq!(java_double(0.0001), "1.0E-4");
    // String.hashCode: "a" = 97, "b" = 98; "Aa" and "BB" collide (2112).
    assert_eq!(java_string_hash("a"), 97);
    assert_eq!(java_string_hash("Aa"), java_string_hash("BB"));
    // HashMap order: bucket index = hash & 15 for small maps. "userName" and "policyArn"
    // land in buckets 13 and 1, so policyArn comes first whatever the JSON order.
    let two = json!({"userName": "bob", "policyArn": "p"});
    let order: Vec<&str> = hashmap_order(two.as_object().unwrap())
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    let bucket = |key: &str| {
        let hash = java_string_hash(key);
        ((hash ^ (hash >> 16)) & 15) as usize
    };
    assert!(bucket(order[0]) <= bucket(order[1]), "{order:?}");
    assert_eq!(
        get("aws.cloudtrail.request_parameters", &sample()),
        Some(json!(format!(
            "{{{}={}, {}={}}}",
            order[0],
            if order[0] == "userName" {
                "bob"
            } else {
                "arn:aws:iam::aws:policy/AdministratorAccess"
            },
            order[1],
            if order[1] == "userName" {
                "bob"
            } else {
                "arn:aws:iam::aws:policy/AdministratorAccess"
            },
        )))
    );
}

#[test]
fn document_nests_every_field() {
    let doc = document(&sample());
    assert_eq!(doc["event"]["action"], json!("AttachUserPolicy"));
    assert_eq!(
        doc["aws"]["cloudtrail"]["user_identity"]["type"],
        json!("AssumedRole")
    );
    assert_eq!(
        doc["aws"]["cloudtrail"]["flattened"]["request_parameters"]["userName"],
        json!("bob")
    );
    // The raw record is still there.
    assert_eq!(doc["eventName"], json!("AttachUserPolicy"));
}

/// Every record of the real corpus derives the core fields consistently with its raw values.
#[test]
fn corpus_records() {
    let Some(dir) = std::env::var_os("VIGIL_CORPUS") else {
        eprintln!("skipped: VIGIL_CORPUS is not set");
        return;
    };
    let path =
        std::path::Path::new(&dir).join("events/invictus_sigma_aws_stratus_cloudtrail.ndjson");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut n = 0;
    let mut failures = 0;
    let mut no_ip = 0;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).unwrap();
        n += 1;
        assert_eq!(
            get("event.action", &record).as_ref(),
            record.get("eventName")
        );
        assert_eq!(
            get("event.provider", &record).as_ref(),
            record.get("eventSource")
        );
        let outcome = get("event.outcome", &record).unwrap();
        let has_error = record
            .get("errorCode")
            .is_some_and(|v| !v.is_null() && v != "");
        if has_error {
            failures += 1;
            assert_eq!(outcome, json!("failure"), "{line}");
        }
        if let Some(Value::String(address)) = record.get("sourceIPAddress")
            && address.parse::<IpAddr>().is_err()
        {
            no_ip += 1;
            assert_eq!(get("source.ip", &record), None);
        }
        if let Some(params) = record.get("requestParameters").filter(|v| v.is_object()) {
            let text = get("aws.cloudtrail.request_parameters", &record);
            if let Some(Value::String(text)) = text {
                assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
                // Every top-level string value appears in the map string.
                for value in params.as_object().unwrap().values() {
                    if let Value::String(value) = value {
                        assert!(text.contains(value.as_str()), "{value} not in {text}");
                    }
                }
            }
        }
    }
    assert!(n > 2000, "read {n} records");
    assert!(failures > 100, "{failures} failures");
    assert!(no_ip > 0, "no service-principal source address seen");
}

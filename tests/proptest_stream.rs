//! Property tests of the stream: for arbitrary sequences of lines (generated CloudTrail-like
//! events, cut lines and arbitrary bytes) through the default pack, every input line gives
//! exactly one output line, each a JSON object; a line that leaves changed carries the
//! enrichment key, so an unmatched line is byte-identical; and the rule index changes no byte
//! of the output.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use vigil::correlate::Limits;
use vigil::eval::{Engine, EngineConfig};
use vigil::protocol::{Processor, ProtocolConfig};
use vigil::rules::{LoadOptions, load_default_pack};

/// Event names the default pack's rules and correlations look for, and a few they do not.
const EVENT_NAMES: &[&str] = &[
    "ConsoleLogin",
    "CreateUser",
    "CreateAccessKey",
    "CreateLoginProfile",
    "AttachUserPolicy",
    "AttachRolePolicy",
    "AddUserToGroup",
    "PutBucketPolicy",
    "DeleteBucketPolicy",
    "PutBucketAcl",
    "StopLogging",
    "DeleteTrail",
    "UpdateTrail",
    "DeleteFlowLogs",
    "DeleteDetector",
    "DisableKey",
    "GetSecretValue",
    "AuthorizeSecurityGroupIngress",
    "ModifyInstanceAttribute",
    "DeactivateMFADevice",
    "GetFederationToken",
    "DescribeInstances",
    "ListBuckets",
    "AssumeRole",
];

const EVENT_SOURCES: &[&str] = &[
    "iam.amazonaws.com",
    "signin.amazonaws.com",
    "s3.amazonaws.com",
    "cloudtrail.amazonaws.com",
    "ec2.amazonaws.com",
    "kms.amazonaws.com",
    "sts.amazonaws.com",
    "secretsmanager.amazonaws.com",
];

fn processor(use_index: bool) -> Processor {
    let loaded = load_default_pack(LoadOptions::default());
    assert_eq!(loaded.n_errors(), 0);
    let mut config = EngineConfig::new(Limits::default());
    config.use_index = use_index;
    let (engine, _) = Engine::new(loaded.set, config);
    Processor::new(engine, ProtocolConfig::default())
}

/// A JSON value of bounded size and depth, for the parts of an event no rule knows about.
fn junk() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z.]{1,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A CloudTrail-like record: the fields the default pack reads, drawn from small populations
/// so that rules match and correlations group, plus arbitrary extra content.
fn cloudtrail() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(EVENT_NAMES),
        prop::sample::select(EVENT_SOURCES),
        0u8..6,
        0u8..4,
        prop::option::of(prop::sample::select(
            &[
                "AccessDenied",
                "Client.UnauthorizedOperation",
                "NoSuchEntity",
            ][..],
        )),
        0i64..86_400,
        prop::sample::select(&["Root", "IAMUser", "AssumedRole", "AWSService"][..]),
        junk(),
        prop::option::of(prop::sample::select(&["Success", "Failure"][..])),
    )
        .prop_map(
            |(name, source, user, ip, error, second, identity, extra, login)| {
                let mut event = json!({
                    "eventVersion": "1.08",
                    "eventTime": format!(
                        "2026-11-24T{:02}:{:02}:{:02}Z",
                        second / 3600,
                        second / 60 % 60,
                        second % 60
                    ),
                    "eventSource": source,
                    "eventName": name,
                    "awsRegion": "us-east-1",
                    "sourceIPAddress": format!("203.0.113.{ip}"),
                    "userIdentity": {
                        "type": identity,
                        "userName": format!("user{user}"),
                        "arn": format!("arn:aws:iam::123456789012:user/user{user}"),
                        "accountId": "123456789012",
                    },
                    "requestParameters": extra,
                    "eventType": "AwsApiCall",
                    "recipientAccountId": "123456789012",
                });
                if let Some(error) = error {
                    event["errorCode"] = json!(error);
                }
                if let Some(login) = login {
                    event["responseElements"] = json!({ "ConsoleLogin": login });
                }
                event
            },
        )
}

/// One input line (without its newline): an event, pretty or compact; a cut event; or
/// arbitrary bytes.
fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => cloudtrail().prop_map(|event| event.to_string().into_bytes()),
        1 => cloudtrail().prop_map(|event| {
            // Whitespace inside a line is still one line once newlines are gone.
            serde_json::to_string_pretty(&event)
                .unwrap_or_default()
                .replace('\n', " ")
                .into_bytes()
        }),
        1 => (cloudtrail(), any::<prop::sample::Index>()).prop_map(|(event, cut)| {
            let text = event.to_string().into_bytes();
            let at = cut.index(text.len() + 1);
            text[..at].to_vec()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200)
            .prop_map(|bytes| bytes.into_iter().filter(|&b| b != b'\n').collect()),
    ]
}

fn run(processor: &mut Processor, lines: &[Vec<u8>]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .enumerate()
        .map(|(idx, line)| {
            let mut out = Vec::new();
            // One second of arrival time per line, after the generated event times.
            processor.process_line(line, 1_795_564_800_000 + idx as i64 * 1000, &mut out);
            out
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_line_comes_out_once_and_the_index_changes_nothing(
        lines in prop::collection::vec(line(), 1..40)
    ) {
        let mut indexed = processor(true);
        let mut unindexed = processor(false);
        let with_index = run(&mut indexed, &lines);
        let without_index = run(&mut unindexed, &lines);
        prop_assert_eq!(&with_index, &without_index);
        for (line, out) in lines.iter().zip(&with_index) {
            prop_assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
            prop_assert_eq!(out.last(), Some(&b'\n'));
            let value: Value = match serde_json::from_slice(out) {
                Ok(value) => value,
                Err(err) => return Err(TestCaseError::fail(format!("not JSON ({err})"))),
            };
            prop_assert!(value.is_object());
            if out[..out.len() - 1] != line[..] {
                prop_assert!(value.get("vigil").is_some(), "changed without the key");
            }
        }
        let counters = indexed.counters();
        prop_assert_eq!(counters.lines_in, lines.len() as u64);
        prop_assert_eq!(counters.lines_out, lines.len() as u64);
    }
}

/// The generator does produce valid events the pack enriches, so the properties above are not
/// vacuously about unmatched lines and error records only.
#[test]
fn generated_events_do_match() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let lines: Vec<Vec<u8>> = (0..300)
        .filter_map(|_| line().new_tree(&mut runner).ok())
        .map(|tree| tree.current())
        .collect();
    let outputs = run(&mut processor(true), &lines);
    let enriched = outputs
        .iter()
        .zip(&lines)
        .filter(|(out, line)| {
            // Valid events only: bad lines also leave changed, as error records.
            serde_json::from_slice::<Value>(line).is_ok_and(|v| v.is_object())
                && out[..out.len() - 1] != line[..]
        })
        .count();
    assert!(
        enriched > 10,
        "only {enriched} of 300 generated lines changed"
    );
}

//! MITRE ATT&CK ids: the tactic table (ATT&CK v18.1 Enterprise; ids and names are facts) and
//! the normalization of each rule format's notation into ids.
//!
//! Sigma writes `attack.t1078.004` and `attack.credential-access` (older rules use
//! `attack.credential_access`); Panther writes `TA0007:T1078`; Elastic gives ids directly.
//! Everything leaves here as `TA0006` / `T1078.004`.

/// (id, shortname, name) of every Enterprise tactic.
pub const TACTICS: &[(&str, &str, &str)] = &[
    ("TA0043", "reconnaissance", "Reconnaissance"),
    ("TA0042", "resource-development", "Resource Development"),
    ("TA0001", "initial-access", "Initial Access"),
    ("TA0002", "execution", "Execution"),
    ("TA0003", "persistence", "Persistence"),
    ("TA0004", "privilege-escalation", "Privilege Escalation"),
    ("TA0005", "defense-evasion", "Defense Evasion"),
    ("TA0006", "credential-access", "Credential Access"),
    ("TA0007", "discovery", "Discovery"),
    ("TA0008", "lateral-movement", "Lateral Movement"),
    ("TA0009", "collection", "Collection"),
    ("TA0011", "command-and-control", "Command and Control"),
    ("TA0010", "exfiltration", "Exfiltration"),
    ("TA0040", "impact", "Impact"),
];

/// What one tag or reference names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttackId {
    Tactic(String),
    Technique(String),
}

/// The tactic id for a shortname (`credential-access`, `credential_access`, `Credential Access`).
pub fn tactic_by_name(name: &str) -> Option<&'static str> {
    let wanted: String = name
        .trim()
        .chars()
        .map(|c| match c {
            '_' | ' ' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    TACTICS
        .iter()
        .find(|(_, short, _)| *short == wanted)
        .map(|(id, _, _)| *id)
}

/// Normalizes a technique or tactic id written in any case (`t1078.004`, `ta0003`).
pub fn parse_id(text: &str) -> Option<AttackId> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(digits) = upper.strip_prefix("TA") {
        if digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Some(AttackId::Tactic(upper));
        }
        return None;
    }
    let rest = upper.strip_prefix('T')?;
    let (base, sub) = match rest.split_once('.') {
        Some((base, sub)) => (base, Some(sub)),
        None => (rest, None),
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(base, 4) || !sub.is_none_or(|sub| digits(sub, 3)) {
        return None;
    }
    Some(AttackId::Technique(upper))
}

/// A Sigma tag: `attack.t1078.004`, `attack.persistence`, `attack.ta0003`. Other namespaces
/// (`cve.*`, `detection.*`, `attack.g0016` groups, `attack.s0002` software) give `None`.
pub fn from_sigma_tag(tag: &str) -> Option<AttackId> {
    let rest = tag.trim().strip_prefix("attack.")?;
    if let Some(id) = parse_id(rest) {
        return Some(id);
    }
    tactic_by_name(rest).map(|id| AttackId::Tactic(id.to_string()))
}

/// A Panther `Reports: MITRE ATT&CK:` entry: `TA0007:T1078`, `TA0005:T1562.008`, or one id.
pub fn from_panther(entry: &str) -> Vec<AttackId> {
    entry.split(':').filter_map(parse_id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma_tags() {
        assert_eq!(
            from_sigma_tag("attack.t1078.004"),
            Some(AttackId::Technique("T1078.004".into()))
        );
        assert_eq!(
            from_sigma_tag("attack.credential-access"),
            Some(AttackId::Tactic("TA0006".into()))
        );
        assert_eq!(
            from_sigma_tag("attack.defense_evasion"),
            Some(AttackId::Tactic("TA0005".into()))
        );
        assert_eq!(from_sigma_tag("attack.g0016"), None);
        assert_eq!(from_sigma_tag("cve.2021-1234"), None);
        assert_eq!(from_sigma_tag("attack.t10"), None);
    }

    #[test]
    fn panther_reports() {
        assert_eq!(
            from_panther("TA0007:T1078"),
            vec![
                AttackId::Tactic("TA0007".into()),
                AttackId::Technique("T1078".into())
            ]
        );
    }
}

//! `vigil explain` and `vigil catalog` through the binary.
//!
//! - Golden pages: `tests/explain/<name>.md` is the Markdown page of one rule of each format
//!   (`UPDATE_EXPECT=1` rewrites them). The rules come from the default pack and the bundled
//!   test cases; the Panther corpus rule `AWS.IAM.CreateUser` needs `$VIGIL_CORPUS` (its path
//!   is written `$VIGIL_CORPUS` in the golden).
//! - The site: generated from the default pack (plus the corpus's CloudTrail rules of every
//!   format when `$VIGIL_CORPUS` is set) into a temporary directory; every rule has a page,
//!   every relative link resolves, tags balance, and rule text is escaped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_CORPUS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: VIGIL_CORPUS is not set");
            None
        }
    }
}

/// Runs the binary from the repository root; returns stdout, failing on a non-zero exit.
fn vigil(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .current_dir(manifest_dir())
        .output()
        .expect("run vigil");
    assert!(
        output.status.success(),
        "vigil {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Compares `actual` with the golden file, or rewrites it under `UPDATE_EXPECT=1`.
fn check_golden(name: &str, actual: &str) {
    let path = manifest_dir()
        .join("tests/explain")
        .join(format!("{name}.md"));
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err} (UPDATE_EXPECT=1 writes it)", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (UPDATE_EXPECT=1 rewrites it)",
        path.display()
    );
}

/// The lines of the fenced block under `## Detection logic`.
fn logic_lines(page: &str) -> Vec<&str> {
    let section = page
        .split("## Detection logic")
        .nth(1)
        .expect("a detection logic section");
    let block = section.split("```text\n").nth(1).expect("a logic block");
    block.split("\n```").next().unwrap_or("").lines().collect()
}

#[test]
fn explain_sigma_default_pack_rule() {
    let page = vigil(&[
        "explain",
        "57777168-f99d-4e95-9e5b-41ee7a5c1581",
        "--format",
        "md",
    ]);
    assert_eq!(
        logic_lines(&page),
        [
            "eventSource ieq \"iam.amazonaws.com\"",
            "eventName ieq \"createuser\"",
            "not (errorCode is_not_null)"
        ]
    );
    check_golden("sigma_iam_user_created", &page);
}

#[test]
fn explain_panther_python_rule() {
    let page = vigil(&[
        "explain",
        "Test.Python.Outputs",
        "--rules",
        "tests/cases/panther/python_outputs",
        "--format",
        "md",
    ]);
    assert!(page.contains("exact (lowered)"), "{page}");
    assert!(page.contains("group, actor"), "alert_context keys: {page}");
    check_golden("panther_python_outputs", &page);
}

#[test]
fn explain_elastic_rules() {
    let page = vigil(&[
        "explain",
        "kql-golden",
        "--rules",
        "tests/cases/elastic/kql_query",
        "--format",
        "md",
    ]);
    check_golden("elastic_kql", &page);
    let page = vigil(&[
        "explain",
        "threshold-golden",
        "--rules",
        "tests/cases/elastic/threshold",
        "--format",
        "md",
    ]);
    assert!(
        page.contains("| base rule | threshold-golden:query"),
        "{page}"
    );
    assert!(page.contains("| window | 10m |"), "{page}");
    check_golden("elastic_threshold", &page);
}

#[test]
fn explain_panther_create_user_from_corpus() {
    let Some(corpus) = corpus() else { return };
    let rules = corpus.join("panther/rules/aws_cloudtrail_rules");
    let page = vigil(&[
        "explain",
        "AWS.IAM.CreateUser",
        "--rules",
        rules.to_str().unwrap(),
        "--format",
        "md",
    ]);
    // `aws_cloudtrail_success(event) and event.get("eventName") == "CreateUser"`.
    assert_eq!(
        logic_lines(&page),
        [
            "eventName eq \"CreateUser\"",
            "not (errorCode is_not_empty or errorMessage is_not_empty)"
        ]
    );
    let page = page.replace(corpus.to_str().unwrap(), "$VIGIL_CORPUS");
    check_golden("panther_aws_iam_create_user", &page);
}

#[test]
fn explain_unknown_rule_is_an_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["explain", "no-such-rule"])
        .current_dir(manifest_dir())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no-such-rule"));
}

#[test]
fn explain_json_is_one_object() {
    let text = vigil(&[
        "explain",
        "57777168-f99d-4e95-9e5b-41ee7a5c1581",
        "--format",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["format"], "sigma");
    assert_eq!(value["tests"].as_array().map(Vec::len), Some(2));
    assert_eq!(value["tests"][0]["passed"], true);
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-catalog-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn html_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            html_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "html") {
            out.push(path);
        }
    }
}

/// Every `href="..."` and `src="..."` value of a page.
fn links(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["href=\"", "src=\""] {
        for part in html.split(attr).skip(1) {
            if let Some(end) = part.find('"') {
                out.push(part[..end].to_string());
            }
        }
    }
    out
}

/// Checks that every element is closed in order (void elements excepted); returns the
/// first problem.
fn balanced(html: &str) -> Result<(), String> {
    const VOID: &[&str] = &["meta", "link", "br", "img", "hr", "input"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after
            .find('>')
            .ok_or_else(|| "a '<' without '>'".to_string())?;
        let tag = &after[..end];
        rest = &after[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let name = name.trim().to_ascii_lowercase();
            match stack.pop() {
                Some(open) if open == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!("a tag with no name: <{tag}>"));
        }
        if !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    match stack.is_empty() {
        true => Ok(()),
        false => Err(format!("unclosed: {stack:?}")),
    }
}

fn check_site(dir: &Path, n_rules: usize) {
    let mut files = Vec::new();
    html_files(dir, &mut files);
    let rule_pages = files
        .iter()
        .filter(|path| path.parent().is_some_and(|p| p.ends_with("rules")))
        .count();
    assert_eq!(rule_pages, n_rules, "one page per rule");
    for name in ["index.html", "overlaps.html", "attack.html", "style.css"] {
        assert!(dir.join(name).is_file(), "{name} is missing");
    }
    for file in &files {
        let html = std::fs::read_to_string(file).unwrap();
        if let Err(problem) = balanced(&html) {
            panic!("{}: {problem}", file.display());
        }
        for link in links(&html) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let target = file.parent().unwrap().join(&link);
            assert!(
                target.is_file(),
                "{}: link {link} does not resolve",
                file.display()
            );
        }
    }
}

#[test]
fn catalog_site_of_the_default_pack_and_corpus() {
    let mut args: Vec<String> = Vec::new();
    if let Some(corpus) = corpus() {
        args.push("--rules".into());
        args.push("rules/default".into());
        for dir in [
            "sigma/rules/cloud/aws",
            "panther/rules/aws_cloudtrail_rules",
            "elastic/rules/integrations/aws",
        ] {
            args.push("--rules".into());
            args.push(corpus.join(dir).display().to_string());
        }
    }
    let html_dir = temp_dir("site");
    let json_dir = temp_dir("json");
    let run = |out: &Path, format: &str| {
        let mut all = vec!["catalog".to_string()];
        all.extend(args.iter().cloned());
        all.extend([
            "--out".into(),
            out.display().to_string(),
            "--format".into(),
            format.into(),
        ]);
        vigil(&all.iter().map(String::as_str).collect::<Vec<_>>());
    };
    run(&html_dir, "html");
    run(&json_dir, "json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_dir.join("catalog.json")).unwrap())
            .unwrap();
    let rules = json["rules"].as_array().expect("rules array");
    assert!(rules.len() > 40, "only {} rules", rules.len());
    let ids: BTreeSet<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), rules.len(), "ids are unique");
    for id in &ids {
        let page = html_dir.join("rules").join(vigil::catalog::page_name(id));
        assert!(page.is_file(), "no page for {id}");
    }
    check_site(&html_dir, rules.len());
    // The coverage matrix has the 14 tactics and at least one covered technique.
    assert_eq!(json["coverage"].as_array().map(Vec::len), Some(14));
    let matrix = std::fs::read_to_string(html_dir.join("attack.html")).unwrap();
    assert!(matrix.contains("T1136 Create Account"));
    let _ = std::fs::remove_dir_all(&html_dir);
    let _ = std::fs::remove_dir_all(&json_dir);
}

#[test]
fn catalog_escapes_rule_text() {
    let dir = temp_dir("escape");
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::write(
        rules.join("evil.yml"),
        "title: <script>alert(1)</script> & \"quotes\"\nid: evil-<b>id</b>\ndescription: <img src=x onerror=alert(2)>\nreferences:\n  - 'javascript:alert(3)'\n  - 'https://example.com/\"><script>alert(4)</script>'\nlogsource:\n  product: aws\n  service: cloudtrail\ndetection:\n  selection:\n    eventName: '<script>alert(5)</script>'\n  condition: selection\nlevel: high\n",
    )
    .unwrap();
    let out = dir.join("site");
    vigil(&[
        "catalog",
        "--rules",
        rules.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let page_name = vigil::catalog::page_name("evil-<b>id</b>");
    assert!(!page_name.contains('<'), "{page_name}");
    let mut files = Vec::new();
    html_files(&out, &mut files);
    assert_eq!(files.len(), 4);
    for file in &files {
        let html = std::fs::read_to_string(file).unwrap();
        for raw in ["<script", "<img", "<b>", "href=\"javascript:"] {
            assert!(!html.contains(raw), "{}: {raw} unescaped", file.display());
        }
    }
    let index = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(index.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;"));
    let page = std::fs::read_to_string(out.join("rules").join(&page_name)).unwrap();
    assert!(page.contains("&lt;img src=x onerror=alert(2)&gt;"));
    check_site(&out, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Chromium binary: `$VIGIL_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VIGIL_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs headless Chromium on a page with `args`; returns stdout, failing on a non-zero exit
/// or after two minutes.
fn headless(chromium: &Path, profile: &Path, page: &Path, args: &[&str]) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let started = std::time::Instant::now();
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(status) => {
                let mut out = String::new();
                use std::io::Read;
                child
                    .stdout
                    .take()
                    .expect("stdout")
                    .read_to_string(&mut out)
                    .expect("read chromium output");
                assert!(status.success(), "chromium failed on {}", page.display());
                return out;
            }
            None if started.elapsed() > std::time::Duration::from_secs(120) => {
                let _ = child.kill();
                panic!("chromium did not finish on {}", page.display());
            }
            None => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// The index and a rule page load in a real browser and parse into the structure written
/// (every rule a row, the rule's title as the heading); the coverage matrix is rendered to
/// `target/tmp/catalog/attack.png` for people to look at. `.ci/run` installs Chromium.
#[test]
fn catalog_site_in_a_headless_browser() {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("catalog");
    let _ = std::fs::remove_dir_all(&out);
    let site = out.join("site");
    vigil(&["catalog", "--out", site.to_str().unwrap()]);
    let json_dir = out.join("json");
    vigil(&[
        "catalog",
        "--out",
        json_dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_dir.join("catalog.json")).unwrap())
            .unwrap();
    let rules = json["rules"].as_array().unwrap();
    let profile = out.join("profile");

    let dom = headless(
        &chromium,
        &profile,
        &site.join("index.html"),
        &["--dump-dom"],
    );
    let body = dom.split("<tbody>").nth(1).expect("the index table body");
    let body = body.split("</tbody>").next().unwrap();
    assert_eq!(
        body.matches("<tr>").count(),
        rules.len(),
        "one row per rule"
    );

    let id = "57777168-f99d-4e95-9e5b-41ee7a5c1581";
    let page = site.join("rules").join(vigil::catalog::page_name(id));
    let dom = headless(&chromium, &profile, &page, &["--dump-dom"]);
    assert!(dom.contains("<h1>AWS IAM User Created</h1>"), "{dom}");
    assert!(dom.contains("eventName ieq \"createuser\""), "{dom}");

    let screenshot = out.join("attack.png");
    headless(
        &chromium,
        &profile,
        &site.join("attack.html"),
        &[
            &format!("--screenshot={}", screenshot.display()),
            "--window-size=1800,1400",
        ],
    );
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    eprintln!("coverage matrix screenshot: {}", screenshot.display());
}
